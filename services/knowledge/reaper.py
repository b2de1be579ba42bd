"""The reaper of silent documents: an indexing run whose worker died is retried, or failed.

A document is silent when it is ``parsing`` or ``embedding`` without a heartbeat for
``document_silence_seconds`` (each embedded batch beats), or still ``queued`` ten times that long (its task
was lost). It gets a new attempt (an old task, if ever redelivered, no longer matches and does nothing)
until the attempts are spent; then it fails with a readable error. Re-index runs that went quiet with
documents still waiting get their chain started again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.events import EventBus
from core.queues import TASKS
from core.settings import get_settings
from models import Document, DocumentStatus
from services.knowledge import reindex
from services.knowledge.indexing import announce_status

QUEUED_SILENCE_FACTOR = 10
WORKER_LOST = "The worker indexing this document stopped too many times; upload it again"


@dataclass(frozen=True)
class DocumentReapResult:
    retried: list[uuid.UUID]
    failed: list[uuid.UUID]
    resumed_runs: list[uuid.UUID]


async def reap_documents(session: AsyncSession, bus: EventBus, limit: int = 200) -> DocumentReapResult:
    settings = get_settings()
    now = datetime.now(UTC)
    silence = timedelta(seconds=settings.document_silence_seconds)
    queued_since = now - silence * QUEUED_SILENCE_FACTOR
    silent = (
        await session.scalars(
            select(Document)
            .where(
                or_(
                    Document.status.in_((DocumentStatus.parsing, DocumentStatus.embedding))
                    & (Document.heartbeat_at < now - silence),
                    (Document.status == DocumentStatus.queued)
                    & (func.coalesce(Document.heartbeat_at, Document.created_at) < queued_since),
                )
            )
            .order_by(Document.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    retried, failed = [], []
    for document in silent:
        if document.attempt >= settings.document_max_attempts:
            document.status = DocumentStatus.failed
            document.error = WORKER_LOST
            document.error_code = "worker_lost"
            failed.append(document.id)
        else:
            document.attempt += 1
            document.status = DocumentStatus.queued
            document.progress = 0.0
            outbox.enqueue(session, TASKS.index_document, str(document.id), document.attempt)
            retried.append(document.id)
        document.heartbeat_at = now
        announce_status(session, bus, document)
    await session.flush()
    return DocumentReapResult(retried, failed, await reindex.resume_stalled_runs(session, queued_since))
