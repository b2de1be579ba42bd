"""The ``embeddings`` queue: index a document, re-index runs, and reap documents whose worker went silent."""

from __future__ import annotations

import uuid

from celery.exceptions import SoftTimeLimitExceeded

from core.events import EventBus
from core.queues import TASKS
from core.redis import async_redis, sync_redis
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from models import DocumentStatus
from services.billing import indexing as indexing_charges
from services.errors import InsufficientBalance
from services.knowledge import indexing, reaper, reindex
from services.knowledge.embedding import TransientEmbeddingError, get_embedder
from services.knowledge.storage import get_storage
from tasks import TRANSIENT as INFRASTRUCTURE
from workers import loop
from workers.app import celery_app

# An embedding provider's 429/5xx is retried like an infrastructure hiccup.
TRANSIENT = (*INFRASTRUCTURE, TransientEmbeddingError)
_settings = get_settings()


@celery_app.task(
    name=TASKS.index_document,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=5,
    acks_late=True,
    soft_time_limit=_settings.document_time_limit_seconds,
    time_limit=_settings.document_time_limit_seconds + 30,
)
def index_document(document_id: str, attempt: int = 1) -> str:
    indexer = indexing.Indexer(
        EventBus(sync_client=sync_redis()), get_storage(), get_embedder(), reserve=_reserve
    )
    try:
        outcome = indexer.run(uuid.UUID(document_id), attempt)
    except SoftTimeLimitExceeded:
        job = indexing.Job(uuid.UUID(document_id), attempt, *_owner_fields(uuid.UUID(document_id)))
        outcome = indexer.fail(job, "Indexing took longer than the time limit", "time_limit")
    if outcome in (DocumentStatus.ready.value, DocumentStatus.failed.value):
        loop.run(_ended(uuid.UUID(document_id)), timeout=60)
    return outcome


def _reserve(job: indexing.Job, tokens: int) -> str | None:
    return loop.run(_hold_for_text(job, tokens), timeout=60)


async def _hold_for_text(job: indexing.Job, tokens: int) -> str | None:
    try:
        async with unit_of_work() as session:
            await indexing_charges.hold_for_extracted_text(
                session, job.owner_id, job.document_id, job.run_id, tokens
            )
    except InsufficientBalance as exc:
        details = exc.details or {}
        return (
            f"{exc.message}: {details.get('required_micros')} micros are needed and "
            f"{details.get('available_micros')} are available"
        )
    return None


async def _ended(document_id: uuid.UUID) -> None:
    async with unit_of_work() as session:
        await reindex.indexing_ended(session, document_id)


def _owner_fields(document_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID, str, str]:
    from core.db import session_scope
    from models import Document

    with session_scope() as session:
        doc = session.get_one(Document, document_id)
        return doc.owner_id, doc.assistant_id, doc.storage_key, doc.content_type


@celery_app.task(
    name=TASKS.reindex_next, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5, acks_late=True
)
def reindex_next(run_id: str) -> str | None:
    return loop.run(_reindex_next(uuid.UUID(run_id)), timeout=60)


async def _reindex_next(run_id: uuid.UUID) -> str | None:
    async with unit_of_work() as session:
        document_id = await reindex.claim_next(session, EventBus(async_client=async_redis()), run_id)
    return str(document_id) if document_id else None


@celery_app.task(name=TASKS.reap_documents, autoretry_for=TRANSIENT, max_retries=2)
def reap_documents() -> dict[str, int]:
    return loop.run(_reap(), timeout=120)


async def _reap() -> dict[str, int]:
    async with unit_of_work() as session:
        result = await reaper.reap_documents(session, EventBus(async_client=async_redis()))
    return {
        "retried": len(result.retried),
        "failed": len(result.failed),
        "resumed_runs": len(result.resumed_runs),
    }
