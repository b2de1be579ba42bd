"""The reply row's life: claim it for one attempt, keep its heartbeat, end it in a terminal state.

Every write is conditional on (id, attempt, status), so a worker that lost its claim (the reaper gave the
reply to another attempt) or a redelivered task can never overwrite a newer outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncSession

from core.queues import TASKS
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from models import ReplyStatus
from services.chat.prompt import build_prompt, knowledge_block, message_tokens
from services.knowledge.embedding import embed_query_in_process
from services.knowledge.retrieval import retrieve
from services.providers.base import ChatMessage, ContextPassage


@dataclass(frozen=True)
class ClaimedReply:
    reply_id: uuid.UUID
    attempt: int
    dialog_id: uuid.UUID
    owner_id: uuid.UUID
    provider: str
    model: str
    temperature: float
    max_tokens: int
    messages: list[ChatMessage]
    resumed: bool  # an earlier attempt may already have delivered text
    # Knowledge passages in the prompt (None: the assistant has no knowledge base), and their citations.
    passages: tuple[ContextPassage, ...] | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)


# One round trip: lock the reply if this attempt may take it, mark it generating, and read everything
# the prompt needs (the generation settings recorded on the reply when it was accepted, the assistant's
# retrieval settings, the user's message, the history before it, whether there is knowledge). A dialog's
# own instructions follow the system prompt. Replies accepted before settings were recorded take the
# assistant's, with the dialog's temperature and its max_tokens, which may only lower the assistant's.
_CLAIM_SQL = """
    WITH target AS (
        SELECT id, started_at FROM messages
        WHERE id = %(reply_id)s AND role = 'assistant' AND attempt = %(attempt)s
          AND (status = 'queued' OR (status = 'generating' AND heartbeat_at < %(silent_since)s))
        FOR UPDATE SKIP LOCKED
    )
    UPDATE messages AS r
    SET status = 'generating', heartbeat_at = %(now)s, started_at = coalesce(target.started_at, %(now)s),
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
        (SELECT coalesce(json_agg(json_build_array(h.role, h.content) ORDER BY h.seq), '[]')
         FROM (SELECT role, content, seq FROM messages
               WHERE dialog_id = r.dialog_id AND seq < u.seq AND status = 'completed' AND content <> ''
               ORDER BY seq DESC LIMIT %(history)s) AS h) AS history
"""


async def claim(conn: AsyncConnection[Any], reply_id: uuid.UUID, attempt: int) -> ClaimedReply | None:
    """Take the reply for this attempt, or ``None`` if it is terminal, newer, or alive elsewhere.

    Commits the claim; the knowledge passages, if the assistant has any, are retrieved after it."""
    settings = get_settings()
    now = datetime.now(UTC)
    params = {
        "reply_id": reply_id,
        "attempt": attempt,
        "now": now,
        "silent_since": now - timedelta(seconds=settings.reply_silence_seconds),
        "history": settings.llm_history_messages,
    }
    row = await (await conn.execute(_CLAIM_SQL, params)).fetchone()
    await conn.commit()
    if row is None:
        return None
    knowledge, passages, citations = "", None, list[dict[str, Any]]()
    if row["has_knowledge"]:
        async with unit_of_work() as session:
            knowledge, passages, citations = await _knowledge_for(session, row, settings.llm_context_tokens)
    messages = build_prompt(
        row["system_prompt"],
        [(role, content) for role, content in row["history"]],
        row["user_content"],
        settings.llm_context_tokens,
        row["max_tokens"],
        knowledge,
    )
    return ClaimedReply(
        reply_id=reply_id,
        attempt=attempt,
        dialog_id=row["dialog_id"],
        owner_id=row["owner_id"],
        provider=row["llm_provider"] or settings.llm_provider,
        model=row["model"],
        temperature=row["temperature"],
        max_tokens=row["max_tokens"],
        messages=messages,
        resumed=row["resumed"],
        passages=passages,
        citations=citations,
    )


async def _knowledge_for(
    session: AsyncSession, row: Any, context_tokens: int
) -> tuple[str, tuple[ContextPassage, ...] | None, list[dict[str, Any]]]:
    """The passages retrieved for the user's message that fit the prompt, and their citations."""
    settings = get_settings()
    question = row["user_content"]
    hits = await retrieve(
        session, row["owner_id"], row["assistant_id"], question, embed_query_in_process,
        top_k=row["retrieval_top_k"], min_score=row["retrieval_min_score"],
    )  # fmt: skip
    if hits is None:
        return "", None, []
    room = context_tokens - row["max_tokens"] - message_tokens(question)
    room -= message_tokens(row["system_prompt"]) if row["system_prompt"] else 0
    knowledge, used = knowledge_block(
        [(h.filename, h.text) for h in hits], min(settings.knowledge_context_tokens, room)
    )
    passages = tuple(ContextPassage(h.text, h.filename) for h in hits[:used])
    citations = [
        {"document_id": str(h.document_id), "chunk_id": str(h.chunk_id), "filename": h.filename,
         "score": round(h.score, 4)}
        for h in hits[:used]
    ]  # fmt: skip
    return knowledge, passages, citations


_FINISH_SQL = """
    UPDATE messages
    SET status = %(status)s, content = %(content)s, completed_at = %(now)s, error = %(error)s,
        prompt_tokens = %(prompt_tokens)s, completion_tokens = %(completion_tokens)s,
        citations = coalesce(%(citations)s, citations)
    WHERE id = %(reply_id)s AND attempt = %(attempt)s AND status = 'generating'
    RETURNING EXISTS (SELECT 1 FROM telegram_sends WHERE telegram_sends.reply_id = messages.id) AS telegram
"""


@dataclass(frozen=True)
class Finished:
    """The attempt ended the reply; what it owes next runs on other queues."""

    follow_up: list[str]  # task names, each called with the reply id


def follow_up_tasks(telegram: bool) -> list[str]:
    tasks = []
    if get_settings().billing_enabled:
        tasks.append(TASKS.settle_reply)  # its hold becomes the charge for what it used, once
    if telegram:
        tasks.append(TASKS.telegram_reply_finished)  # a Telegram chat is waiting for it
    return tasks


async def finish(
    conn: AsyncConnection[Any],
    job: ClaimedReply,
    status: ReplyStatus,
    content: str,
    error: dict[str, Any] | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    citations: list[dict[str, Any]] | None = None,
) -> Finished | None:
    """End the attempt; ``None`` if it no longer owns the reply (nothing is written then)."""
    params = {
        "reply_id": job.reply_id,
        "attempt": job.attempt,
        "status": status.value,
        "content": content,
        "now": datetime.now(UTC),
        "error": Jsonb(error) if error is not None else None,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "citations": Jsonb(citations) if citations is not None else None,
    }
    row = await (await conn.execute(_FINISH_SQL, params)).fetchone()
    return None if row is None else Finished(follow_up_tasks(row["telegram"]))


_HEARTBEAT_SQL = """
    UPDATE messages AS m SET heartbeat_at = now()
    FROM unnest(CAST(%(ids)s AS uuid[]), CAST(%(attempts)s AS int[])) AS a(id, attempt)
    WHERE m.id = a.id AND m.attempt = a.attempt AND m.status = 'generating'
"""


async def heartbeat(conn: AsyncConnection[Any], running: dict[uuid.UUID, int]) -> None:
    """One statement for every reply this process is generating."""
    if running:
        ids, attempts = zip(*running.items(), strict=True)
        await conn.execute(_HEARTBEAT_SQL, {"ids": list(ids), "attempts": list(attempts)})
