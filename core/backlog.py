"""How many tasks wait in a queue of the broker, read at most every ``ttl`` seconds per process.

The API asks before accepting work for a queue; one broker round trip per period, whatever the request
rate. A broker that cannot be read counts as empty: sending the task will fail on its own (503).
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from kombu import Connection

from core.loop_local import LoopLocal
from core.metrics import queue_keys

log = logging.getLogger("chatai.backlog")


class QueueBacklog:
    def __init__(self, broker_url: str, ttl: float) -> None:
        self.broker_url = broker_url
        self.ttl = ttl
        self._read_at: dict[str, float] = {}
        self._depth: dict[str, int] = {}
        # A client's connections belong to the loop that opened them.
        self._redis = LoopLocal(
            lambda: aioredis.Redis.from_url(broker_url, socket_timeout=1, socket_connect_timeout=1)
        )

    async def depth(self, queue: str) -> int:
        """The queue's depth as last read; re-read (by one caller at a time) once it is ``ttl`` old."""
        now = time.monotonic()
        if now - self._read_at.get(queue, -self.ttl) >= self.ttl:
            self._read_at[queue] = now  # concurrent callers keep the last figure meanwhile
            try:
                self._depth[queue] = await self._read(queue)
            except Exception as exc:  # any broker failure: the depth is unknown, so nothing is refused
                log.warning("queue depth of %s unreadable: %s", queue, type(exc).__name__)
                self._depth[queue] = 0
        return self._depth.get(queue, 0)

    async def _read(self, queue: str) -> int:
        if self.broker_url.startswith(("redis://", "rediss://", "unix://")):
            pipe = self._redis.get().pipeline(transaction=False)
            for key in queue_keys(queue):
                pipe.llen(key)
            return int(sum(await pipe.execute()))
        return await asyncio.to_thread(self._read_amqp, queue)

    def _read_amqp(self, queue: str) -> int:
        with Connection(self.broker_url, connect_timeout=1) as conn:
            return int(conn.default_channel.queue_declare(queue, passive=True).message_count)
