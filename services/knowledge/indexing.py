"""Indexing one document on an ``embeddings`` worker: parse, chunk, embed in batches, write.

``queued → parsing → embedding → ready | failed``, each change published as ``document.status`` on the
owner's ``user`` topic. Every write is conditional on (id, attempt), so a run the reaper has replaced, or a
redelivered old task, changes nothing. The chunks and the ``ready`` status are written in one
transaction that first deletes the document's old chunks: a re-run replaces them, never duplicates them,
and searches keep the old chunks until the new ones are committed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core import outbox
from core.db import session_scope
from core.events import EventBus, user_topic
from core.settings import get_settings
from models.knowledge import Chunk, Document, DocumentStatus
from services.knowledge.chunking import chunk_text
from services.knowledge.embedding import Embedder, EmbeddingError, TransientEmbeddingError
from services.knowledge.parsing import ParseError
from services.knowledge.sandbox import extract_text_isolated
from services.knowledge.storage import FileStorage

log = logging.getLogger("chatai.knowledge")

PROGRESS_EVENT_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True)
class Job:
    document_id: uuid.UUID
    attempt: int
    owner_id: uuid.UUID
    assistant_id: uuid.UUID
    storage_key: str
    kind: str
    run_id: uuid.UUID | None = None  # the indexing run (None: the upload's)


# Reserves the cost of embedding a job's chunks (their total tokens) before any is embedded; returns None,
# or why the document cannot be indexed (its owner's balance does not cover it).
Reserve = Callable[[Job, int], str | None]


def status_event(
    document_id: uuid.UUID,
    status: DocumentStatus,
    progress: float,
    error: str | None,
    error_code: str | None = None,
) -> dict[str, Any]:
    return {
        "document_id": str(document_id),
        "status": status.value,
        "progress": progress,
        "error": error,
        "error_code": error_code,
    }


def announce_status(session: AsyncSession, bus: EventBus, document: Document) -> None:
    """Publish the document's status on its owner's topic once the unit of work has committed."""
    topic = user_topic(document.owner_id)
    event = status_event(document.id, document.status, document.progress, document.error, document.error_code)

    async def publish() -> None:
        await bus.apublish(topic, "document.status", event)

    outbox.after_commit(session, publish)


class Indexer:
    def __init__(
        self, bus: EventBus, storage: FileStorage, embedder: Embedder, reserve: Reserve | None = None
    ) -> None:
        self.bus = bus
        self.storage = storage
        self.embedder = embedder
        self.reserve = reserve

    def run(self, document_id: uuid.UUID, attempt: int) -> str:
        """Index one attempt of a document; returns the outcome (a status, ``skipped`` or ``lost``)."""
        self.embedder.warm()  # before the claim: loading the model must not look like a silent worker
        job = self._claim(document_id, attempt)
        if job is None:
            return "skipped"
        self._publish(job, DocumentStatus.parsing, 0.0, None)
        try:
            text = extract_text_isolated(
                self.storage.get(job.storage_key),
                job.kind,
                heartbeat=lambda: self._set(job, DocumentStatus.parsing, 0.0, publish=False),
            )
        except ParseError as exc:
            return self.fail(job, str(exc), exc.code)
        except FileNotFoundError:
            return self.fail(job, "The uploaded file is missing from storage", "file_missing")
        settings = get_settings()
        chunks = chunk_text(text, settings.chunk_tokens, settings.chunk_overlap_tokens)
        if self.reserve is not None:
            refusal = self.reserve(job, sum(c.token_count for c in chunks))
            if refusal is not None:
                return self.fail(job, refusal, "insufficient_balance")
        if not self._set(job, DocumentStatus.embedding, 0.0):
            return "lost"
        vectors: list[list[float]] = []
        last_event = time.monotonic()
        try:
            for start in range(0, len(chunks), settings.embedding_batch_size):
                batch = chunks[start : start + settings.embedding_batch_size]
                vectors.extend(self.embedder.embed([c.text for c in batch]))
                progress = round(len(vectors) / len(chunks), 3)
                publish = time.monotonic() - last_event >= PROGRESS_EVENT_INTERVAL_SECONDS
                if not self._set(job, DocumentStatus.embedding, progress, publish=publish):
                    return "lost"
                if publish:
                    last_event = time.monotonic()
        except TransientEmbeddingError:
            self._set(job, DocumentStatus.queued, 0.0)  # the task's retry claims it again
            raise
        except EmbeddingError as exc:
            return self.fail(job, f"Embedding failed: {exc}", "embedding_failed")
        rows = [
            {
                "id": uuid.uuid4(),
                "owner_id": job.owner_id,
                "assistant_id": job.assistant_id,
                "document_id": job.document_id,
                "position": c.position,
                "text": c.text,
                "token_count": c.token_count,
                "embedding_model": self.embedder.model_name,
                "embedding": vector,
            }
            for c, vector in zip(chunks, vectors, strict=True)
        ]
        with session_scope() as session:
            owned = self._update(
                session, job, DocumentStatus.embedding,
                status=DocumentStatus.ready, progress=1.0, chunk_count=len(rows),
                embedding_model=self.embedder.model_name, error=None, error_code=None,
            )  # fmt: skip
            if not owned:
                return "lost"
            session.execute(delete(Chunk).where(Chunk.document_id == job.document_id))
            session.execute(insert(Chunk), rows)
        self._publish(job, DocumentStatus.ready, 1.0, None)
        return DocumentStatus.ready.value

    def fail(self, job: Job, message: str, code: str) -> str:
        with session_scope() as session:
            owned = self._update(
                session, job, None,
                status=DocumentStatus.failed, error=message, error_code=code, heartbeat_at=None,
            )  # fmt: skip
        if not owned:
            return "lost"
        self._publish(job, DocumentStatus.failed, 0.0, message, code)
        return DocumentStatus.failed.value

    def _claim(self, document_id: uuid.UUID, attempt: int) -> Job | None:
        silent_since = datetime.now(UTC) - timedelta(seconds=get_settings().document_silence_seconds)
        with session_scope() as session:
            row = session.execute(
                update(Document)
                .where(
                    Document.id == document_id,
                    Document.attempt == attempt,
                    or_(
                        Document.status == DocumentStatus.queued,
                        Document.status.in_((DocumentStatus.parsing, DocumentStatus.embedding))
                        & (Document.heartbeat_at < silent_since),
                    ),
                )
                .values(
                    status=DocumentStatus.parsing,
                    progress=0.0,
                    error=None,
                    error_code=None,
                    heartbeat_at=datetime.now(UTC),
                )
                .returning(
                    Document.owner_id,
                    Document.assistant_id,
                    Document.storage_key,
                    Document.content_type,
                    Document.index_run_id,
                )
            ).first()
        if row is None:
            return None
        return Job(
            document_id, attempt, row.owner_id, row.assistant_id, row.storage_key, row.content_type,
            row.index_run_id,
        )  # fmt: skip

    def _set(self, job: Job, status: DocumentStatus, progress: float, *, publish: bool = True) -> bool:
        with session_scope() as session:
            owned = self._update(session, job, None, status=status, progress=progress)
        if owned and publish:
            self._publish(job, status, progress, None)
        return owned

    @staticmethod
    def _update(session: Session, job: Job, expected: DocumentStatus | None, **values: Any) -> bool:
        """Write ``values`` if this attempt still owns the document (and it is in ``expected``)."""
        active = (DocumentStatus.parsing, DocumentStatus.embedding)
        values.setdefault("heartbeat_at", datetime.now(UTC))
        result = session.execute(
            update(Document)
            .where(
                Document.id == job.document_id,
                Document.attempt == job.attempt,
                Document.status == expected if expected else Document.status.in_(active),
            )
            .values(updated_at=datetime.now(UTC), **values)
            .returning(Document.id)
        )
        return result.first() is not None

    def _publish(
        self,
        job: Job,
        status: DocumentStatus,
        progress: float,
        error: str | None,
        error_code: str | None = None,
    ) -> None:
        self.bus.publish(
            user_topic(job.owner_id),
            "document.status",
            status_event(job.document_id, status, progress, error, error_code),
        )
