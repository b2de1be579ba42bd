"""The reaper of silent replies: work whose worker died is regenerated elsewhere, or failed.

A reply is silent when it is ``generating`` without a heartbeat for ``reply_silence_seconds``, or still
``queued`` long after it was accepted (its task was lost). It gets a new attempt (the old task, if it is
ever redelivered, no longer matches the attempt and does nothing) until the attempts are spent; then it
fails with ``worker_lost``.

A reply that no worker has claimed ``unclaimed_resend_seconds`` after it was accepted (its task may have
gone with a broker that lost its data, or with a worker that dropped what it had prefetched) has its task
sent once more for the same attempt, long before the queued silence above. Sending it twice is harmless:
the claim lets one delivery generate and the other find the reply taken. It costs no attempt, so a reply
that only waits behind a backlog is not failed for it; it is re-sent at most once.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.events import EventBus, dialog_topic
from core.queues import TASKS
from core.settings import get_settings
from models import Message, MessageRole, ReplyStatus

# Queued work waits behind a backlog legitimately; give it longer before calling it lost.
QUEUED_SILENCE_FACTOR = 10


@dataclass(frozen=True)
class ReapResult:
    retried: list[uuid.UUID]
    failed: list[uuid.UUID]
    resent: list[uuid.UUID]


async def reap(session: AsyncSession, bus: EventBus, limit: int = 500) -> ReapResult:
    settings = get_settings()
    now = datetime.now(UTC)
    silence = timedelta(seconds=settings.reply_silence_seconds)
    # Never claimed (started_at), never re-sent by the reaper (heartbeat_at): a task that may be lost.
    unclaimed = (
        (Message.status == ReplyStatus.queued)
        & Message.started_at.is_(None)
        & Message.heartbeat_at.is_(None)
        & (Message.created_at < now - timedelta(seconds=settings.unclaimed_resend_seconds))
    )
    silent = (
        await session.scalars(
            select(Message)
            .where(
                Message.role == MessageRole.assistant,
                or_(
                    (Message.status == ReplyStatus.generating) & (Message.heartbeat_at < now - silence),
                    (Message.status == ReplyStatus.queued)
                    & (Message.created_at < now - silence * QUEUED_SILENCE_FACTOR)
                    & (
                        (Message.heartbeat_at.is_(None))
                        | (Message.heartbeat_at < now - silence * QUEUED_SILENCE_FACTOR)
                    ),
                    unclaimed,
                ),
            )
            .order_by(Message.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    retried, failed, resent = [], [], []
    for reply in silent:
        if reply.status == ReplyStatus.queued and reply.started_at is None and reply.heartbeat_at is None:
            reply.heartbeat_at = now  # marks it re-sent; the queued silence counts from here
            outbox.enqueue(session, TASKS.generate_reply, str(reply.id), reply.attempt)
            resent.append(reply.id)
        elif reply.attempt >= settings.reply_max_attempts:
            reply.status = ReplyStatus.failed
            reply.error = {"code": "worker_lost", "message": "The worker generating this reply stopped"}
            reply.completed_at = now
            data: dict[str, Any] = {"reply_id": str(reply.id), "error": reply.error}
            outbox.after_commit(session, _publisher(bus, dialog_topic(reply.dialog_id), data))
            if settings.billing_enabled:
                # The reply died: its hold is released (charging only text it had stored, i.e. none).
                outbox.enqueue(session, TASKS.settle_reply, str(reply.id))
            # A Telegram chat waiting for it is told (the task does nothing for other replies).
            outbox.enqueue(session, TASKS.telegram_reply_finished, str(reply.id))
            failed.append(reply.id)
        else:
            reply.attempt += 1
            reply.status = ReplyStatus.queued
            reply.heartbeat_at = now
            outbox.enqueue(session, TASKS.generate_reply, str(reply.id), reply.attempt)
            retried.append(reply.id)
    await session.flush()
    return ReapResult(retried, failed, resent)


def _publisher(bus: EventBus, topic: str, data: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    async def publish() -> None:
        await bus.apublish(topic, "reply.failed", data)

    return publish
