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

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

Granularity = Literal["hour", "day"]
STEP: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}

COUNTS = (
    "messages",
    "replies",
    "failed_replies",
    "dialogs",
    "end_users",
    "prompt_tokens",
    "completion_tokens",
    "cost_micros",
)
COLUMNS = (*COUNTS, "latency_p50_ms", "latency_p95_ms")

# One row per assistant and period with messages in [start, end); optional owner and assistant filters.
_AGGREGATE = """
SELECT m.assistant_id, m.owner_id, m.period_start,
       count(*) AS messages,
       count(*) FILTER (WHERE m.role = 'assistant') AS replies,
       count(*) FILTER (WHERE m.role = 'assistant' AND m.status = 'failed') AS failed_replies,
       count(DISTINCT m.dialog_id) AS dialogs,
       count(DISTINCT m.end_user) AS end_users,
       coalesce(sum(m.prompt_tokens), 0)::bigint AS prompt_tokens,
       coalesce(sum(m.completion_tokens), 0)::bigint AS completion_tokens,
       coalesce(sum(m.cost_micros), 0)::bigint AS cost_micros,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY m.latency_ms) AS latency_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY m.latency_ms) AS latency_p95_ms
FROM (
    SELECT d.assistant_id, a.owner_id, msg.dialog_id, msg.role, msg.status,
           date_trunc(:granularity, msg.created_at, 'UTC') AS period_start,
           coalesce('tg:' || tc.bot_id::text || ':' || tc.chat_id::text, 'w:' || d.widget_end_user_id,
                    'u:' || d.owner_id::text) AS end_user,
           CASE WHEN msg.role = 'assistant' THEN coalesce(u.prompt_tokens, msg.prompt_tokens) END
               AS prompt_tokens,
           CASE WHEN msg.role = 'assistant' THEN coalesce(u.completion_tokens, msg.completion_tokens) END
               AS completion_tokens,
           CASE WHEN msg.role = 'assistant' THEN coalesce(u.cost_micros, msg.cost_micros) END
               AS cost_micros,
           CASE WHEN msg.role = 'assistant' AND msg.status = 'completed'
                THEN extract(epoch FROM msg.completed_at - msg.started_at) * 1000 END AS latency_ms
    FROM messages msg
    JOIN dialogs d ON d.id = msg.dialog_id
    JOIN assistants a ON a.id = d.assistant_id
    LEFT JOIN telegram_chats tc ON tc.dialog_id = d.id
    LEFT JOIN usage_records u ON u.subject_id = msg.id AND u.kind = 'reply'
    WHERE msg.created_at >= :start AND msg.created_at < :end
      AND (CAST(:owner_id AS uuid) IS NULL OR a.owner_id = CAST(:owner_id AS uuid))
      AND (CAST(:assistant_id AS uuid) IS NULL OR d.assistant_id = CAST(:assistant_id AS uuid))
) m
GROUP BY m.assistant_id, m.owner_id, m.period_start
"""

_UPSERT = f"""
WITH fresh AS ({_AGGREGATE}),
written AS (
    INSERT INTO usage_rollups (granularity, assistant_id, owner_id, period_start, {", ".join(COLUMNS)},
                               computed_at)
    SELECT :granularity, assistant_id, owner_id, period_start, {", ".join(COLUMNS)}, now() FROM fresh
    ON CONFLICT (granularity, assistant_id, period_start) DO UPDATE SET
        owner_id = EXCLUDED.owner_id,
        {", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS)},
        computed_at = EXCLUDED.computed_at
    RETURNING 1
),
stale AS (
    DELETE FROM usage_rollups r
    WHERE r.granularity = :granularity AND r.period_start >= :start AND r.period_start < :end
      AND (r.assistant_id, r.period_start) NOT IN (SELECT assistant_id, period_start FROM fresh)
    RETURNING 1
)
SELECT (SELECT count(*) FROM written) AS written, (SELECT count(*) FROM stale) AS deleted
"""


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
    params = {**_bounds(granularity, start, end), "owner_id": None, "assistant_id": None}
    row = (await session.execute(text(_UPSERT), params)).one()
    return RollupResult(written=row.written, deleted=row.deleted)


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
    params = {
        "granularity": granularity,
        "start": start,
        "end": end,
        "owner_id": str(owner_id) if owner_id else None,
        "assistant_id": str(assistant_id) if assistant_id else None,
    }
    result = await session.execute(text(_AGGREGATE), params)
    return [dict(row._mapping) for row in result]
