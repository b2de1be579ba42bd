"""Beat jobs of analytics and maintenance: usage rollups, the queue canary, retention cleanup."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from celery.signals import before_task_publish

from core.queues import QUEUES, ROUTES, TASKS
from core.settings import Settings
from services.operations import canary


def _job(task: str, every: float, queue: str | None = None, **extra: Any) -> dict[str, Any]:
    # Each run expires after one interval: runs missed while workers were down do not pile up.
    return {
        "task": task,
        "schedule": every,
        "options": {"queue": queue or ROUTES[task], "expires": every},
        **extra,
    }


def maintenance_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    if settings.analytics_enabled:
        jobs["rollup-hourly"] = _job(TASKS.rollup_hourly, settings.analytics_hourly_rollup_seconds)
        jobs["rollup-daily"] = _job(TASKS.rollup_daily, settings.analytics_daily_rollup_seconds)
    if settings.canary_enabled:
        for queue in QUEUES:
            jobs[f"canary-{queue}"] = _job(
                TASKS.canary_ping, settings.canary_interval_seconds, queue=queue, args=[queue]
            )
    if settings.dialog_retention_days:
        jobs["retention-cleanup"] = _job(TASKS.retention_cleanup, settings.retention_interval_seconds)
    return jobs


@before_task_publish.connect
def _stamp_canary(
    sender: str | None = None, body: Any = None, headers: dict[str, Any] | None = None, **_: Any
) -> None:
    """Give each ping its send time in a header of its own, and record the send."""
    if sender != TASKS.canary_ping or headers is None:
        return
    sent_at = time.time()
    headers[canary.SENT_AT_HEADER] = sent_at
    args = body[0] if isinstance(body, tuple | list) and body else None
    if args:
        import redis

        from core.redis import sync_redis

        # Without Redis the ping still goes; only its "last sent" time is missing.
        with contextlib.suppress(redis.RedisError):
            canary.record_sent(sync_redis(), str(args[0]), sent_at)
