"""The usage series owners and admins read: stored rollups for past periods, the current period live."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Assistant, Role, UsageRollup, User
from services.analytics.queries import COLUMNS, COUNTS
from services.analytics.rollups import STEP, Granularity, compute, period_floor
from services.errors import Forbidden, NotFound, ValidationFailed

# Longest range one request may ask for, so a series stays one bounded index scan.
MAX_PERIODS = {"hour": 24 * 62, "day": 366 * 3}
DEFAULT_SPAN = {"hour": timedelta(hours=48), "day": timedelta(days=30)}


@dataclass(frozen=True)
class Scope:
    """Whose assistants a series covers: one owner, or the whole platform (``owner_id`` None)."""

    owner_id: uuid.UUID | None
    assistant_id: uuid.UUID | None = None


async def resolve_scope(
    session: AsyncSession,
    caller: User,
    *,
    assistant_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    platform: bool,
) -> Scope:
    """Owners see their own assistants; admins may name any user, or ask for the whole platform."""
    if (user_id is not None or platform) and caller.role != Role.admin:
        raise Forbidden("Only admins may read other users' or the platform's usage")
    if platform and user_id is not None:
        raise ValidationFailed(
            "Pass user_id or platform, not both", details=[{"loc": ["query", "platform"], "msg": "conflict"}]
        )
    owner_id = None if platform else (user_id or caller.id)
    if assistant_id is not None:
        query = select(Assistant.owner_id).where(Assistant.id == assistant_id)
        found_owner = await session.scalar(query)
        # Another tenant's assistant is as absent as a missing one.
        if found_owner is None or (owner_id is not None and found_owner != owner_id):
            raise NotFound("Assistant not found")
    return Scope(owner_id=owner_id, assistant_id=assistant_id)


def resolve_range(
    granularity: Granularity, start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    end = end or now
    if end.tzinfo is None:  # a time without an offset is read as UTC
        end = end.replace(tzinfo=UTC)
    if start is None:
        start = end - DEFAULT_SPAN[granularity]
    elif start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    start = period_floor(granularity, start)
    if start >= end:
        raise ValidationFailed(
            "from must be before to", details=[{"loc": ["query", "from"], "msg": "after to"}]
        )
    if (end - start) / STEP[granularity] > MAX_PERIODS[granularity]:
        raise ValidationFailed(
            f"At most {MAX_PERIODS[granularity]} periods of a {granularity} per request",
            details=[{"loc": ["query", "from"], "msg": "range too long"}],
        )
    return start, end


async def usage_series(
    session: AsyncSession,
    scope: Scope,
    granularity: Granularity,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Rows per assistant and period in [start, end), oldest first; the platform scope sums per period."""
    now = now or datetime.now(UTC)
    current = period_floor(granularity, now)
    stored_end = min(end, current)
    rows: list[dict[str, Any]] = []
    if start < stored_end:
        query = (
            select(UsageRollup)
            .where(
                UsageRollup.granularity == granularity,
                UsageRollup.period_start >= start,
                UsageRollup.period_start < stored_end,
            )
            .order_by(UsageRollup.period_start, UsageRollup.assistant_id)
        )
        if scope.owner_id is not None:
            query = query.where(UsageRollup.owner_id == scope.owner_id)
        if scope.assistant_id is not None:
            query = query.where(UsageRollup.assistant_id == scope.assistant_id)
        for r in await session.scalars(query):
            rows.append(
                {"period_start": r.period_start, "assistant_id": r.assistant_id}
                | {c: getattr(r, c) for c in COLUMNS}
            )
    if end > current:
        # The period still running is not final anywhere: compute it from the raw rows now.
        live = await compute(
            session, granularity, current, current + STEP[granularity],
            owner_id=scope.owner_id, assistant_id=scope.assistant_id,
        )  # fmt: skip
        live.sort(key=lambda r: str(r["assistant_id"]))
        rows += [{"period_start": r["period_start"], "assistant_id": r["assistant_id"]}
                 | {c: r[c] for c in COLUMNS} for r in live]  # fmt: skip
    if scope.owner_id is None and scope.assistant_id is None:
        return _platform_totals(rows)
    return rows


def _platform_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per period over every assistant; percentiles do not add up, so they are left out."""
    totals: dict[datetime, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(
            row["period_start"],
            {"period_start": row["period_start"], "assistant_id": None, **dict.fromkeys(COUNTS, 0),
             "latency_p50_ms": None, "latency_p95_ms": None},
        )  # fmt: skip
        for column in COUNTS:
            total[column] += row[column]
    return [totals[k] for k in sorted(totals)]
