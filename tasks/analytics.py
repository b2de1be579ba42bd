"""The ``analytics`` queue: usage rollups, the queue canary's ping, retention cleanup.

Every task here recomputes or deletes by time range, so a repeated or redelivered run changes nothing more.
"""

from __future__ import annotations

from typing import Literal

from celery import Task

from core.queues import TASKS
from core.redis import sync_redis
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from services.analytics import rollups
from services.operations import canary, retention
from tasks import TRANSIENT
from workers import loop
from workers.app import celery_app

TIME_LIMIT = 600


@celery_app.task(name=TASKS.rollup_hourly, autoretry_for=TRANSIENT, max_retries=2)
def rollup_hourly() -> dict[str, int]:
    return loop.run(_rollup("hour"), timeout=TIME_LIMIT)


@celery_app.task(name=TASKS.rollup_daily, autoretry_for=TRANSIENT, max_retries=2)
def rollup_daily() -> dict[str, int]:
    return loop.run(_rollup("day"), timeout=TIME_LIMIT)


async def _rollup(granularity: Literal["hour", "day"]) -> dict[str, int]:
    async with unit_of_work() as session:
        result = await rollups.rollup_recent(session, granularity)
    return {"written": result.written, "deleted": result.deleted}


@celery_app.task(name=TASKS.retention_cleanup, autoretry_for=TRANSIENT, max_retries=2)
def retention_cleanup() -> int:
    days = get_settings().dialog_retention_days
    return loop.run(_delete_old_dialogs(days), timeout=TIME_LIMIT) if days else 0


async def _delete_old_dialogs(days: int) -> int:
    deleted = 0
    while True:  # one short transaction per batch, so a large backlog never holds long locks
        async with unit_of_work() as session:
            batch = await retention.delete_old_dialogs_batch(session, days)
        deleted += batch
        if batch < retention.BATCH:
            return deleted


# Every worker imports this module, so the ping runs on whichever queue beat sent it to.
@celery_app.task(name=TASKS.canary_ping, bind=True, ignore_result=True)
def canary_ping(self: Task, queue: str) -> None:
    canary.record_consumed(sync_redis(), queue, getattr(self.request, canary.SENT_AT_HEADER, None))
