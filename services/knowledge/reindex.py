"""Re-indexing after the embedding model (or how documents are chunked) changed, without downtime.

A run marks the ready documents it covers (``reindex_run_id``). A chain of ``reindex_next`` tasks hands
them to the indexing task one at a time: the document goes back to ``queued`` under a new attempt while its
old chunks keep answering searches, and the indexing replaces them with the new ones in one transaction.
When that indexing ends (``indexing_ended``), the chain takes the next document; ``parallel`` chains run
side by side. The reaper restarts the chain of a run that went quiet with documents still waiting (a lost
task); at worst that adds a chain, and every document is still indexed once per run.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.events import EventBus
from core.queues import TASKS
from core.settings import get_settings
from models import Assistant, Chunk, Document, DocumentStatus
from services.billing import indexing as indexing_charges
from services.errors import InsufficientBalance, NotFound
from services.knowledge import queries
from services.knowledge.indexing import announce_status

log = logging.getLogger("chatai.knowledge")

ACTIVE = (DocumentStatus.queued, DocumentStatus.parsing, DocumentStatus.embedding)
SKIPPED_FOR_BALANCE = (
    "Re-indexing was skipped: the balance does not cover it; the previous index still answers"
)


@dataclass(frozen=True)
class ReindexRun:
    id: uuid.UUID
    documents: int
    model: str


async def start(
    session: AsyncSession,
    assistant_id: uuid.UUID | None = None,
    everything: bool = False,
    parallel: int = 1,
) -> ReindexRun:
    """Mark the ready documents indexed with another model than the configured one (``everything``: all
    of them), of one assistant or of all, and start ``parallel`` chains over them."""
    model = get_settings().embedding_model
    conditions = [Document.status == DocumentStatus.ready]
    if assistant_id is not None:
        if await session.get(Assistant, assistant_id) is None:
            raise NotFound("Assistant not found")
        conditions.append(Document.assistant_id == assistant_id)
    if not everything:
        conditions.append(Document.embedding_model.is_distinct_from(model))
    run_id = uuid.uuid4()
    marked = (
        await session.scalars(
            update(Document)
            .where(*conditions)
            .values(reindex_run_id=run_id, updated_at=datetime.now(UTC))
            .returning(Document.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for _ in range(min(max(1, parallel), len(marked))):
        outbox.enqueue(session, TASKS.reindex_next, str(run_id))
    log.info("re-index run %s: %d documents for %s", run_id, len(marked), model)
    return ReindexRun(run_id, len(marked), model)


async def claim_next(session: AsyncSession, bus: EventBus, run_id: uuid.UUID) -> uuid.UUID | None:
    """Queue the run's next waiting document for indexing; None when none is left."""
    while True:
        document = await session.scalar(
            select(Document)
            .where(Document.reindex_run_id == run_id, Document.status == DocumentStatus.ready)
            .order_by(Document.created_at, Document.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if document is None:
            return None
        document.reindex_run_id = None
        tokens = await session.scalar(
            select(func.coalesce(func.sum(Chunk.token_count), 0)).where(Chunk.document_id == document.id)
        )
        try:
            await indexing_charges.hold_for_indexing(
                session, document.owner_id, document.id, run_id, int(tokens or 0)
            )
        except InsufficientBalance:  # the hold wrote nothing; this document keeps its index
            document.error = SKIPPED_FOR_BALANCE
            await session.flush()
            continue
        document.index_run_id = run_id
        document.attempt += 1
        document.status = DocumentStatus.queued
        document.progress = 0.0
        document.error = None
        document.error_code = None
        document.heartbeat_at = datetime.now(UTC)
        await session.flush()
        outbox.enqueue(session, TASKS.index_document, str(document.id), document.attempt)
        announce_status(session, bus, document)
        return document.id


async def indexing_ended(session: AsyncSession, document_id: uuid.UUID) -> None:
    """After an indexing run ended (ready or failed): settle its charge, and move its re-index chain on."""
    document = await session.get(Document, document_id)
    if document is None:
        return
    run_id = document.index_run_id
    if await indexing_charges.has_open_hold(session, document_id, run_id):
        outbox.enqueue(session, TASKS.settle_indexing, str(document_id), str(run_id) if run_id else None)
    if run_id is not None:
        outbox.enqueue(session, TASKS.reindex_next, str(run_id))


@dataclass(frozen=True)
class RunProgress:
    run_id: uuid.UUID
    waiting: int
    indexing: int
    ready: int
    failed: int


async def progress(session: AsyncSession, run_id: uuid.UUID) -> RunProgress:
    waiting = await session.scalar(
        select(func.count()).where(Document.reindex_run_id == run_id, Document.status == DocumentStatus.ready)
    )
    rows = dict(
        (
            await session.execute(
                select(Document.status, func.count())
                .where(Document.index_run_id == run_id)
                .group_by(Document.status)
            )
        ).all()
    )
    if not waiting and not rows:
        raise NotFound("Re-index run not found")
    return RunProgress(
        run_id,
        int(waiting or 0),
        sum(int(rows.get(s, 0)) for s in ACTIVE),
        int(rows.get(DocumentStatus.ready, 0)),
        int(rows.get(DocumentStatus.failed, 0)),
    )


async def resume_stalled_runs(session: AsyncSession, quiet_since: datetime) -> list[uuid.UUID]:
    """Runs with documents waiting, none indexing and no change since ``quiet_since``: chain again.

    A chain's next task may wait in a busy queue for a while, so the reaper passes the long silence it
    allows queued documents, not the heartbeat silence (resuming a live chain would double it)."""
    runs = await queries.stalled_reindex_runs(session, quiet_since)
    for run in runs:
        outbox.enqueue(session, TASKS.reindex_next, str(run))
    return runs
