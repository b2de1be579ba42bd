"""The broker collector against real Redis: a task sent by Celery and left waiting shows in its queue's
depth and age; a message kombu delivered and that is not yet acknowledged is counted in its queue's unacked
gauges, from the state kombu itself writes."""

from __future__ import annotations

import os
import subprocess

from kombu.connection import Connection

from core.metrics import BrokerQueueCollector, queue_backlog
from core.queues import QUEUES, TASKS
from tests.fixtures.processes import ROOT, python_argv


def gauges(collector: BrokerQueueCollector) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("queue", "")): s.value for f in collector.collect() for s in f.samples}


def test_waiting_and_unacked_messages_are_measured(stack_redis_url: str) -> None:
    collector = BrokerQueueCollector(stack_redis_url, QUEUES)
    empty = gauges(collector)
    assert empty[("chatai_broker_up", "")] == 1
    assert all(empty[("chatai_queue_depth", q)] == 0 for q in QUEUES)

    # Real publishes (no worker runs here), stamped with sent_at by the publish signal: one task waits on
    # the billing queue, one on the llm queue.
    env = {**os.environ, "REDIS_URL": stack_redis_url, "CELERY_BROKER_URL": stack_redis_url}
    code = (
        "from workers.app import celery_app; "
        f"celery_app.send_task({TASKS.sweep_holds!r}); celery_app.send_task({TASKS.reap_replies!r})"
    )
    subprocess.run(python_argv("-c", code), env=env, cwd=ROOT, check=True, timeout=60)
    assert gauges(collector)[("chatai_queue_depth", "llm")] == 1

    # A consumer takes the llm message and does not acknowledge it: kombu moves it to its unacked state.
    with Connection(stack_redis_url) as broker:
        delivered = broker.default_channel.basic_get("llm", no_ack=False)
        assert delivered is not None
        seen = gauges(collector)
        backlog = queue_backlog(stack_redis_url, QUEUES)
    assert seen[("chatai_queue_depth", "billing")] == 1
    assert seen[("chatai_queue_depth", "llm")] == 0
    assert 0 < seen[("chatai_queue_oldest_message_age_seconds", "billing")] < 30
    assert seen[("chatai_queue_oldest_message_age_seconds", "llm")] == 0
    assert seen[("chatai_queue_unacked", "llm")] == 1 and seen[("chatai_queue_unacked", "billing")] == 0
    assert 0 < seen[("chatai_queue_oldest_unacked_age_seconds", "llm")] < 30

    # The admin queue view reads the same backlog.
    assert backlog is not None and set(backlog) == set(QUEUES)
    assert backlog["billing"].depth == 1 and 0 < backlog["billing"].oldest_age_seconds < 30
    assert (backlog["llm"].depth, backlog["llm"].oldest_age_seconds) == (0, 0.0)


def test_an_unreachable_broker_reports_down_instead_of_failing_the_scrape() -> None:
    collector = BrokerQueueCollector("redis://127.0.0.1:1/0", QUEUES)
    assert gauges(collector) == {("chatai_broker_up", ""): 0}
    assert queue_backlog("redis://127.0.0.1:1/0", QUEUES) is None
    assert queue_backlog("amqp://guest:guest@127.0.0.1:5672//", QUEUES) is None, "not a Redis broker"
