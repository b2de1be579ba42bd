"""Analytics' hand-written SQL: one aggregate over the raw rows, and the upsert of its rows into
``usage_rollups``. Tested directly in tests/integration/test_analytics_queries.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from models import MessageRole, ReplyStatus

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
       count(*) FILTER (WHERE m.role = :assistant_role) AS replies,
       count(*) FILTER (WHERE m.role = :assistant_role AND m.status = :failed) AS failed_replies,
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
           CASE WHEN msg.role = :assistant_role THEN coalesce(u.prompt_tokens, msg.prompt_tokens) END
               AS prompt_tokens,
           CASE WHEN msg.role = :assistant_role THEN coalesce(u.completion_tokens, msg.completion_tokens) END
               AS completion_tokens,
           CASE WHEN msg.role = :assistant_role THEN coalesce(u.cost_micros, msg.cost_micros) END
               AS cost_micros,
           CASE WHEN msg.role = :assistant_role AND msg.status = :completed
                THEN extract(epoch FROM msg.completed_at - msg.started_at) * 1000 END AS latency_ms
    FROM messages msg
    JOIN dialogs d ON d.id = msg.dialog_id
    JOIN assistants a ON a.id = d.assistant_id
    LEFT JOIN telegram_chats tc ON tc.dialog_id = d.id
    LEFT JOIN usage_records u ON u.subject_id = msg.id AND u.kind = :usage_kind
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


_ENUMS = {
    "assistant_role": MessageRole.assistant.value,
    "failed": ReplyStatus.failed.value,
    "completed": ReplyStatus.completed.value,
    "usage_kind": "reply",
}


async def aggregate(
    session: AsyncSession, granularity: str, start: datetime, end: datetime,
    owner_id: uuid.UUID | None = None, assistant_id: uuid.UUID | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The rows a rollup of [start, end) would write, computed now and not stored."""
    params = {
        **_ENUMS, "granularity": granularity, "start": start, "end": end,
        "owner_id": str(owner_id) if owner_id else None,
        "assistant_id": str(assistant_id) if assistant_id else None,
    }  # fmt: skip
    result = await session.execute(text(_AGGREGATE), params)
    return [dict(row._mapping) for row in result]


async def upsert_rollups(
    session: AsyncSession, granularity: str, start: datetime, end: datetime
) -> tuple[int, int]:
    """Write every period's row of [start, end) and remove those of periods left empty: (written,
    deleted)."""
    params = {**_ENUMS, "granularity": granularity, "start": start, "end": end, "owner_id": None,
              "assistant_id": None}  # fmt: skip
    row = (await session.execute(text(_UPSERT), params)).one()
    return int(row.written), int(row.deleted)
