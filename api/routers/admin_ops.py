"""Admin view of the queues: whether each one's canary ping is being consumed, how fast, and what waits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from fastapi import APIRouter

from api.deps import AdminUser
from api.schemas import Out
from core.metrics import queue_backlog
from core.queues import QUEUES
from core.redis import async_redis
from core.settings import get_settings
from services.operations import canary

router = APIRouter(prefix="/api/admin", tags=["admin"])


class QueueHealthOut(Out):
    queue: str
    consuming: bool
    last_sent_at: datetime | None
    last_consumed_at: datetime | None
    latency_seconds: float | None
    # From a Redis broker; None with another broker or while it cannot be read.
    depth: int | None = None
    oldest_message_age_seconds: float | None = None


class QueuesOut(Out):
    items: list[QueueHealthOut]
    checked_at: datetime


def _time(at: float | None) -> datetime | None:
    return datetime.fromtimestamp(at, UTC) if at is not None else None


@router.get("/queues", response_model=QueuesOut)
async def list_queues(_: AdminUser) -> QueuesOut:
    now = time.time()
    settings = get_settings()
    health = await canary.queue_health(async_redis(), list(QUEUES), settings.canary_stale_seconds, now)
    backlog = await asyncio.to_thread(queue_backlog, settings.broker_url, QUEUES) or {}
    return QueuesOut(
        items=[
            QueueHealthOut(
                queue=h.queue,
                consuming=h.consuming,
                last_sent_at=_time(h.last_sent_at),
                last_consumed_at=_time(h.last_consumed_at),
                latency_seconds=h.latency_seconds,
                depth=backlog[h.queue].depth if h.queue in backlog else None,
                oldest_message_age_seconds=(
                    backlog[h.queue].oldest_age_seconds if h.queue in backlog else None
                ),
            )
            for h in health
        ],
        checked_at=datetime.fromtimestamp(now, UTC),
    )
