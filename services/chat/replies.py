"""The reply row's life: claim it for one attempt, keep its heartbeat, end it in a terminal state.

Every write is conditional on (id, attempt, status), so a worker that lost its claim (the reaper gave the
reply to another attempt) or a redelivered task can never overwrite a newer outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.settings import get_settings
from models import Assistant, Dialog, Message, MessageRole, ReplyStatus
from services.chat.prompt import build_prompt, knowledge_block, message_tokens
from services.knowledge.embedding import embed_query_in_process
from services.knowledge.retrieval import retrieve
from services.providers.base import ChatMessage, ContextPassage
from workers.registry import TASKS


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


async def claim(session: AsyncSession, reply_id: uuid.UUID, attempt: int) -> ClaimedReply | None:
    """Take the reply for this attempt, or ``None`` if it is terminal, newer, or alive elsewhere."""
    settings = get_settings()
    now = datetime.now(UTC)
    silent_since = now - timedelta(seconds=settings.reply_silence_seconds)
    reply = await session.scalar(
        select(Message)
        .where(
            Message.id == reply_id,
            Message.role == MessageRole.assistant,
            Message.attempt == attempt,
            or_(
                Message.status == ReplyStatus.queued,
                (Message.status == ReplyStatus.generating) & (Message.heartbeat_at < silent_since),
            ),
        )
        .with_for_update(skip_locked=True)
    )
    if reply is None:
        return None
    resumed = reply.started_at is not None
    reply.status = ReplyStatus.generating
    reply.heartbeat_at = now
    reply.started_at = reply.started_at or now
    dialog = await session.get_one(Dialog, reply.dialog_id)
    assistant = await session.get_one(Assistant, dialog.assistant_id)
    user_message = await session.get_one(Message, reply.reply_to_id)
    history = (
        await session.execute(
            select(Message.role, Message.content)
            .where(
                Message.dialog_id == dialog.id,
                Message.seq < user_message.seq,
                Message.status == ReplyStatus.completed,
                Message.content != "",
            )
            .order_by(Message.seq.desc())
            .limit(settings.llm_history_messages)
        )
    ).all()
    hits = await retrieve(
        session,
        reply.owner_id,
        assistant.id,
        user_message.content,
        embed_query_in_process,
        top_k=assistant.retrieval_top_k,
        min_score=assistant.retrieval_min_score,
    )
    knowledge, passages, citations = "", None, []
    if hits is not None:
        room = settings.llm_context_tokens - assistant.max_tokens - message_tokens(user_message.content)
        room -= message_tokens(assistant.system_prompt) if assistant.system_prompt else 0
        knowledge, used = knowledge_block(
            [(h.filename, h.text) for h in hits], min(settings.knowledge_context_tokens, room)
        )
        passages = tuple(ContextPassage(h.text, h.filename) for h in hits[:used])
        citations = [
            {"document_id": str(h.document_id), "chunk_id": str(h.chunk_id), "filename": h.filename,
             "score": round(h.score, 4)}
            for h in hits[:used]
        ]  # fmt: skip
    messages = build_prompt(
        assistant.system_prompt,
        [(role.value, content) for role, content in reversed(history)],
        user_message.content,
        settings.llm_context_tokens,
        assistant.max_tokens,
        knowledge,
    )
    reply.model = assistant.model
    await session.flush()
    return ClaimedReply(
        reply_id=reply.id,
        attempt=attempt,
        dialog_id=dialog.id,
        owner_id=reply.owner_id,
        provider=assistant.llm_provider or settings.llm_provider,
        model=assistant.model,
        temperature=assistant.temperature,
        max_tokens=assistant.max_tokens,
        messages=messages,
        resumed=resumed,
        passages=passages,
        citations=citations,
    )


async def finish(
    session: AsyncSession, job: ClaimedReply, status: ReplyStatus, content: str, **fields: Any
) -> bool:
    """End the attempt; ``False`` if it no longer owns the reply (nothing is written then)."""
    result = await session.execute(
        update(Message)
        .where(
            Message.id == job.reply_id,
            Message.attempt == job.attempt,
            Message.status == ReplyStatus.generating,
        )
        .values(status=status, content=content, completed_at=datetime.now(UTC), **fields)
        .returning(Message.id)
    )
    owned = result.first() is not None
    if owned and get_settings().billing_enabled:
        # Its hold becomes the charge for what it used, once, in the billing queue.
        outbox.enqueue(session, TASKS.settle_reply, str(job.reply_id))
    return owned


_HEARTBEAT_SQL = text(
    """
    UPDATE messages AS m SET heartbeat_at = now()
    FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS int[])) AS a(id, attempt)
    WHERE m.id = a.id AND m.attempt = a.attempt AND m.status = 'generating'
    """
)


async def heartbeat(session: AsyncSession, running: dict[uuid.UUID, int]) -> None:
    """One statement for every reply this process is generating."""
    if running:
        ids, attempts = zip(*running.items(), strict=True)
        await session.execute(_HEARTBEAT_SQL, {"ids": list(ids), "attempts": list(attempts)})
