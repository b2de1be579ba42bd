"""kombu's Redis transport with one fix: a worker that loses Redis while it holds unacknowledged messages
goes on, instead of dying as it closes the lost connection.

On a lost connection Celery closes it; closing a channel restores the messages the worker still holds,
and kombu then builds a Redis client from a connection it has already let go of
(``'NoneType' object has no attribute 'hostname'``); a task still running when it ends acknowledges
on that same dead channel (``… no attribute 'client'``). Neither is a connection error, so Celery treats
it as unrecoverable and the worker exits: a queue of long tasks (``llm``) always holds some. Here the
restore, the ack and the reject are skipped when the channel's connection is gone; the messages stay in
Redis's unacked hash, from which the restore scan puts them back after the visibility timeout, and the
tasks still running finish (their effect is keyed on their rows, so a redelivery does nothing twice).
tests/e2e/test_worker_outlives_redis.py kills Redis under a generating worker; tests/unit/test_broker.py
pins the kombu names this relies on.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

# Celery's `broker_transport` for redis:// URLs (the URL still says where Redis is).
REDIS_TRANSPORT = "core.broker:RedisTransport"


class _QoS(kombu_redis.QoS):
    def _connection_gone(self) -> bool:
        transport = self.channel.connection
        return transport is None or transport.client is None

    def restore_unacked(self, client: Any = None) -> None:
        if client is None and self._connection_gone():
            return
        super().restore_unacked(client)  # type: ignore[no-untyped-call]

    # A task that outlived its connection acknowledges into the void: its message stays unacked.
    def ack(self, delivery_tag: Any) -> None:
        if not self._connection_gone():
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if not self._connection_gone():
            super().reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]


class _Channel(kombu_redis.Channel):
    QoS = _QoS


class RedisTransport(kombu_redis.Transport):
    Channel = _Channel
