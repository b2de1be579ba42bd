"""Usage rollups per assistant and UTC period, recomputed from the raw rows.

A period's row is always computed from scratch over the messages created in it and upserted, so running
a period again gives the same row (and a period whose messages are gone loses its row). Runs recompute
only the recent periods, which keeps each run small however long the history.

What the columns count, per assistant and period (by each message's ``created_at``, in UTC):
- ``messages``: user messages and replies; ``replies``, ``failed_replies``: the replies, those failed;
- ``dialogs``: dialogs with a message in the period; ``end_users``: the people behind them (the Telegram
  chat of a Telegram dialog, the anonymous visitor of a widget dialog, else the account that opened it);
- tokens and cost: the replies' usage records (the reply's own counts when billing did not record one);
- ``latency_p50_ms``/``latency_p95_ms``: ``completed_at - started_at`` of the completed replies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import queries

Granularity = Literal["hour", "day"]
STEP: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class RollupResult:
    written: int
    deleted: int


def period_floor(granularity: Granularity, at: datetime) -> datetime:
    at = at.astimezone(UTC)
    if granularity == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _bounds(granularity: Granularity, start: datetime, end: datetime) -> dict[str, Any]:
    """Whole periods covering [start, end)."""
    first = period_floor(granularity, start)
    last = period_floor(granularity, end)
    if last < end.astimezone(UTC):
        last += STEP[granularity]
    return {"granularity": granularity, "start": first, "end": last}


async def rollup(
    session: AsyncSession, granularity: Granularity, start: datetime, end: datetime
) -> RollupResult:
    """Recompute and upsert every period touching [start, end); rows of periods left empty are removed."""
    written, deleted = await queries.upsert_rollups(session, **_bounds(granularity, start, end))
    return RollupResult(written=written, deleted=deleted)


async def rollup_recent(
    session: AsyncSession, granularity: Granularity, now: datetime | None = None
) -> RollupResult:
    """The current and the previous period: a period is final at the first run after it ends."""
    current = period_floor(granularity, now or datetime.now(UTC))
    return await rollup(session, granularity, current - STEP[granularity], current + STEP[granularity])


async def compute(
    session: AsyncSession,
    granularity: Granularity,
    start: datetime,
    end: datetime,
    *,
    owner_id: uuid.UUID | None = None,
    assistant_id: uuid.UUID | None = None,
) -> list[dict[str, Any]]:
    """The rows a rollup of [start, end) would write, computed now and not stored (the live period)."""
    return await queries.aggregate(session, granularity, start, end, owner_id, assistant_id)
