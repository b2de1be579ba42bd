"""A tiny Celery app with a no-op task: the baseline round trip on the same Redis broker.

The worker runs as ``python -m celery -A bench.noop_app worker -Q bench_noop -P threads -c N``; each
task INCRs a counter, the completion signal the benchmark polls (no result backend).
"""

from __future__ import annotations

import os

import redis
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
QUEUE = "bench_noop"
TASK = "bench.noop"
COUNTER = "bench:noop:done"

app = Celery("bench_noop", broker=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    # Same delivery guarantees as the llm queue: late acks, one message prefetched per thread.
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)

_redis = redis.Redis.from_url(REDIS_URL)


@app.task(name=TASK)
def noop() -> None:
    _redis.incr(COUNTER)
