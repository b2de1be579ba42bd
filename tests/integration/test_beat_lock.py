"""Two real beat processes: only the one holding the Redis lock sends, and the other takes over when it dies.

No worker consumes the ``llm`` queue here, so every job beat sends stays in the broker's list, where the
test reads when each was sent (its ``expires`` header is the send time plus the job's interval).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis

from core.queues import TASKS
from tests.fixtures.processes import eventually
from tests.fixtures.stack import Stack

INTERVAL = 1.0
LOCK_TTL = 3.0


@pytest.fixture(scope="module")
def beat_stack(stack_env: dict[str, str], log_dir: Any) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_REAPER_INTERVAL_SECONDS": str(INTERVAL),
        "CHATAI_BEAT_LOCK_TTL_SECONDS": str(LOCK_TTL),
        "CHATAI_ANALYTICS_ENABLED": "false",
        "CHATAI_CANARY_ENABLED": "false",
    }
    system = Stack(env, log_dir)
    yield system
    system.stop()


def send_times(r: redis.Redis, task: str) -> list[float]:
    """When beat sent each queued ``task``, in order."""
    times = []
    for raw in r.lrange("llm", 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == task:
            times.append(datetime.fromisoformat(headers["expires"]).timestamp() - INTERVAL)
    return sorted(times)


def test_two_beats_send_each_job_once_per_period(beat_stack: Stack, stack_redis_url: str) -> None:
    r = redis.Redis.from_url(stack_redis_url)
    first = beat_stack.start_beat("beat-a")
    first.wait_for_log("beat lock acquired", timeout=30)
    second = beat_stack.start_beat("beat-b")
    second.wait_for_log("beat: Starting", timeout=30)
    started = len(send_times(r, TASKS.reap_replies))

    eventually(lambda: len(send_times(r, TASKS.reap_replies)) >= started + 6, 30, "six more reaper runs")
    assert "beat lock acquired" not in second.log_text()
    times = send_times(r, TASKS.reap_replies)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Two sending schedulers would put two runs at most half a period apart.
    assert min(gaps) > 0.75 * INTERVAL, gaps

    # The active one dies without releasing: the standby takes over after the TTL and keeps the periods.
    first.kill()
    second.wait_for_log("beat lock acquired", timeout=LOCK_TTL * 5)
    before = len(send_times(r, TASKS.reap_replies))
    eventually(lambda: len(send_times(r, TASKS.reap_replies)) >= before + 4, 30, "runs after the takeover")
    times = send_times(r, TASKS.reap_replies)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.75 * INTERVAL, gaps
