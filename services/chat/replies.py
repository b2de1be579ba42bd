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
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from core.outbox import PendingTask
from core.queues import TASKS
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from models import ReplyStatus
from services.billing import settlements
from services.chat import queries
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


async def claim(conn: AsyncConnection[Any], reply_id: uuid.UUID, attempt: int) -> ClaimedReply | None:
    """Take the reply for this attempt, or ``None`` if it is terminal, newer, or alive elsewhere.

    Commits the claim; the knowledge passages, if the assistant has any, are retrieved after it."""
    settings = get_settings()
    now = datetime.now(UTC)
    silent_since = now - timedelta(seconds=settings.reply_silence_seconds)
    row = await queries.claim_reply(conn, reply_id, attempt, now, silent_since, settings.llm_history_messages)
    await conn.commit()
    if row is None:
        return None
    knowledge, passages, citations = "", None, list[dict[str, Any]]()
    if row["has_knowledge"]:
        async with unit_of_work() as session:
            knowledge, passages, citations = await _knowledge_for(session, row, settings.llm_context_tokens)
    messages = build_prompt(
        row["system_prompt"],
        [(role, content, tokens) for role, content, tokens in row["history"]],
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


@dataclass(frozen=True)
class Finished:
    """The attempt ended the reply; what it owes next runs on other queues."""

    follow_up: list[str]  # task names, each called with the reply id
    settle: bool  # billing is on: its hold becomes the charge for what it used, once


def follow_up_tasks(telegram: bool) -> list[str]:
    return [TASKS.telegram_reply_finished] if telegram else []  # a Telegram chat is waiting for it


async def settlement_tasks(reply_id: uuid.UUID) -> list[PendingTask]:
    """Queue the reply's settlement with the others waiting; its own settle task (which takes the
    others along) only when none is scheduled yet, or when the list is out of reach."""
    try:
        scheduled = await settlements.queue_reply(reply_id)
    except RedisError:
        scheduled = True
    return [PendingTask(TASKS.settle_reply, (str(reply_id),))] if scheduled else []


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
    telegram = await queries.finish_reply(
        conn, job.reply_id, job.attempt, status, content, error, prompt_tokens, completion_tokens, citations
    )
    return None if telegram is None else Finished(follow_up_tasks(telegram), get_settings().billing_enabled)


async def heartbeat(conn: AsyncConnection[Any], running: dict[uuid.UUID, int]) -> None:
    """One statement for every reply this process is generating."""
    await queries.heartbeat_replies(conn, running)
