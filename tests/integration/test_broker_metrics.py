"""The broker collector against real Redis: a task sent by Celery and left waiting shows in its queue's
depth and age; delivered-but-unacked messages are counted per queue from kombu's unacked hash."""

from __future__ import annotations

import os
import subprocess
import time

import orjson
import redis

from core.metrics import BrokerQueueCollector
from core.queues import QUEUES
from tests.fixtures.processes import ROOT, python_argv


def gauges(collector: BrokerQueueCollector) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("queue", "")): s.value for f in collector.collect() for s in f.samples}


def test_waiting_and_unacked_messages_are_measured(stack_redis_url: str) -> None:
    collector = BrokerQueueCollector(stack_redis_url, QUEUES)
    empty = gauges(collector)
    assert empty[("chatai_broker_up", "")] == 1
    assert all(empty[("chatai_queue_depth", q)] == 0 for q in QUEUES)

    # A real publish (no worker consumes billing here), stamped with sent_at by the publish signal.
    env = {**os.environ, "REDIS_URL": stack_redis_url, "CELERY_BROKER_URL": stack_redis_url}
    code = "from workers.app import celery_app; celery_app.send_task('chatai.billing.sweep_holds')"
    subprocess.run(python_argv("-c", code), env=env, cwd=ROOT, check=True, timeout=60)
    # Delivered and not acknowledged: kombu keeps [message, exchange, routing_key] by delivery tag.
    client = redis.Redis.from_url(stack_redis_url)
    client.hset("unacked", "tag-1", orjson.dumps([{"headers": {}}, "", "llm"]))
    client.zadd("unacked_index", {"tag-1": time.time() - 300})

    seen = gauges(collector)
    assert seen[("chatai_queue_depth", "billing")] == 1
    assert seen[("chatai_queue_depth", "llm")] == 0
    assert 0 < seen[("chatai_queue_oldest_message_age_seconds", "billing")] < 30
    assert seen[("chatai_queue_oldest_message_age_seconds", "llm")] == 0
    assert seen[("chatai_queue_unacked", "llm")] == 1 and seen[("chatai_queue_unacked", "billing")] == 0
    assert 299 < seen[("chatai_queue_oldest_unacked_age_seconds", "llm")] < 330


def test_an_unreachable_broker_reports_down_instead_of_failing_the_scrape() -> None:
    collector = BrokerQueueCollector("redis://127.0.0.1:1/0", QUEUES)
    assert gauges(collector) == {("chatai_broker_up", ""): 0}
