"""The reply path's hand-written SQL, on plain psycopg: with hundreds of generations in one process, the
ORM's per-statement CPU was the largest share of a reply's cost, so a reply costs these three statements.
Enum values go in as parameters. Each is tested directly in tests/integration/test_chat_queries.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from models import MessageRole, ReplyStatus
from services.providers.tokens import estimate_tokens

_STATUSES = {
    "assistant": MessageRole.assistant.value,
    "queued": ReplyStatus.queued.value,
    "generating": ReplyStatus.generating.value,
    "completed": ReplyStatus.completed.value,
}

# One round trip: lock the reply if this attempt may take it, mark it generating, and read everything
# the prompt needs (the generation settings recorded on the reply when it was accepted, the assistant's
# retrieval settings, the user's message, the history before it, whether there is knowledge). A dialog's
# own instructions follow the system prompt. Replies accepted before settings were recorded take the
# assistant's, with the dialog's temperature and its max_tokens, which may only lower the assistant's.
_CLAIM = """
    WITH target AS (
        SELECT id, started_at FROM messages
        WHERE id = %(reply_id)s AND role = %(assistant)s AND attempt = %(attempt)s
          AND (status = %(queued)s OR (status = %(generating)s AND heartbeat_at < %(silent_since)s))
        FOR UPDATE SKIP LOCKED
    )
    UPDATE messages AS r
    SET status = %(generating)s, heartbeat_at = %(now)s, started_at = coalesce(target.started_at, %(now)s),
        model = coalesce(r.model, a.model)
    FROM target, dialogs AS d, assistants AS a, messages AS u
    WHERE r.id = target.id AND d.id = r.dialog_id AND a.id = d.assistant_id AND u.id = r.reply_to_id
    RETURNING
        target.started_at IS NOT NULL AS resumed, r.dialog_id, r.owner_id, a.id AS assistant_id,
        concat_ws(
            E'\n\n',
            nullif(coalesce(
                (SELECT p.system_prompt FROM assistant_prompts AS p WHERE p.id = r.system_prompt_id),
                a.system_prompt
            ), ''),
            d.instructions
        ) AS system_prompt,
        coalesce(r.model, a.model) AS model,
        coalesce(r.temperature, d.temperature, a.temperature) AS temperature,
        coalesce(r.max_tokens, least(a.max_tokens, coalesce(d.max_tokens, a.max_tokens))) AS max_tokens,
        a.llm_provider,
        a.retrieval_top_k, a.retrieval_min_score, u.content AS user_content,
        EXISTS (SELECT 1 FROM chunks WHERE chunks.assistant_id = a.id) AS has_knowledge,
        (SELECT coalesce(json_agg(json_build_array(h.role, h.content, h.tokens) ORDER BY h.seq), '[]')
         FROM (SELECT role, content, tokens, seq FROM messages
               WHERE dialog_id = r.dialog_id AND seq < u.seq AND status = %(completed)s AND content <> ''
               ORDER BY seq DESC LIMIT %(history)s) AS h) AS history
"""


_FINISH = """
    UPDATE messages
    SET status = %(status)s, content = %(content)s, tokens = %(tokens)s, completed_at = %(now)s,
        error = %(error)s,
        prompt_tokens = %(prompt_tokens)s, completion_tokens = %(completion_tokens)s,
        citations = coalesce(%(citations)s, citations)
    WHERE id = %(reply_id)s AND attempt = %(attempt)s AND status = %(generating)s
    RETURNING EXISTS (SELECT 1 FROM telegram_sends WHERE telegram_sends.reply_id = messages.id) AS telegram
"""


_HEARTBEAT = """
    UPDATE messages AS m SET heartbeat_at = now()
    FROM unnest(CAST(%(ids)s AS uuid[]), CAST(%(attempts)s AS int[])) AS a(id, attempt)
    WHERE m.id = a.id AND m.attempt = a.attempt AND m.status = %(generating)s
"""


async def claim_reply(
    conn: AsyncConnection[Any], reply_id: uuid.UUID, attempt: int, now: datetime, silent_since: datetime,
    history: int,
) -> dict[str, Any] | None:  # fmt: skip
    """Lock and mark the reply generating for this attempt if it is queued (or generating, silent since
    ``silent_since``), with what its prompt needs; ``None`` if it is not this attempt's to take."""
    params = {
        **_STATUSES, "reply_id": reply_id, "attempt": attempt, "now": now, "silent_since": silent_since,
        "history": history,
    }  # fmt: skip
    row: dict[str, Any] | None = await (await conn.execute(_CLAIM, params)).fetchone()
    return row


async def finish_reply(
    conn: AsyncConnection[Any], reply_id: uuid.UUID, attempt: int, status: ReplyStatus, content: str,
    error: dict[str, Any] | None, prompt_tokens: int | None, completion_tokens: int | None,
    citations: list[dict[str, Any]] | None,
) -> bool | None:  # fmt: skip
    """End the attempt's generating reply: whether a Telegram chat waits for it, or ``None`` if the
    attempt no longer owns the reply (nothing is written then)."""
    params = {
        **_STATUSES, "reply_id": reply_id, "attempt": attempt, "status": status.value, "content": content,
        "tokens": estimate_tokens(content), "now": datetime.now(UTC),
        "error": Jsonb(error) if error is not None else None,
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "citations": Jsonb(citations) if citations is not None else None,
    }  # fmt: skip
    row = await (await conn.execute(_FINISH, params)).fetchone()
    return None if row is None else bool(row["telegram"])


async def heartbeat_replies(conn: AsyncConnection[Any], running: dict[uuid.UUID, int]) -> None:
    """One statement for every (reply, attempt) this process is generating."""
    if running:
        ids, attempts = zip(*running.items(), strict=True)
        params = {**_STATUSES, "ids": list(ids), "attempts": list(attempts)}
        await conn.execute(_HEARTBEAT, params)
