"""The kombu names core/broker.py builds on: if a kombu release renames them, this fails first."""

from __future__ import annotations

import inspect

from celery import Celery
from kombu.transport import redis as kombu_redis

from core.broker import REDIS_TRANSPORT, RedisTransport


def test_the_redis_transport_still_has_the_pieces_the_fix_overrides() -> None:
    assert kombu_redis.Transport.Channel is kombu_redis.Channel
    assert kombu_redis.Channel.QoS is kombu_redis.QoS
    signatures = {
        name: list(inspect.signature(getattr(kombu_redis.QoS, name)).parameters)
        for name in ("restore_unacked", "ack", "reject")
    }
    assert signatures == {
        "restore_unacked": ["self", "client"],
        "ack": ["self", "delivery_tag"],
        "reject": ["self", "delivery_tag", "requeue"],
    }


def test_a_redis_url_with_the_transport_setting_connects_through_it() -> None:
    app = Celery(broker="redis://127.0.0.1:6379/3")
    app.conf.broker_transport = REDIS_TRANSPORT
    with app.connection_for_write() as connection:
        assert connection.transport_cls == REDIS_TRANSPORT
        assert isinstance(connection.transport, RedisTransport)
        assert (connection.hostname, connection.port, connection.virtual_host) == ("127.0.0.1", 6379, "3")
