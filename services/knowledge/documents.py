"""Documents as the API sees them: upload, list, read, delete, and hit-testing search."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.events import EventBus
from core.queues import TASKS
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from models import Assistant, Document, DocumentStatus, User
from services import assistants
from services.accounts import auth
from services.billing import indexing as indexing_charges
from services.errors import NotFound, TooLarge, UnsupportedType
from services.knowledge import parsing, retrieval
from services.knowledge.files import remove_files_after_commit
from services.knowledge.indexing import announce_status
from services.knowledge.storage import FileStorage, document_key
from services.pagination import Page, newest_first, page_of


async def upload(
    session: AsyncSession,
    bus: EventBus,
    storage: FileStorage,
    owner: User,
    assistant_id: uuid.UUID,
    filename: str,
    data: bytes,
) -> Document:
    assistant = await assistants.get_owned(session, owner, assistant_id)
    limit = get_settings().max_upload_bytes
    if len(data) > limit:
        raise TooLarge(f"The file is larger than {limit} bytes", details={"max_bytes": limit})
    try:
        kind = parsing.sniff(data, filename)
    except parsing.UnsupportedType as exc:
        raise UnsupportedType(str(exc)) from exc
    document = Document(
        id=uuid.uuid4(),
        owner_id=owner.id,
        assistant_id=assistant.id,
        filename=(filename or "document")[:300],
        content_type=kind,
        size_bytes=len(data),
        status=DocumentStatus.queued,
        progress=0.0,
        chunk_count=0,
        attempt=1,
    )
    document.storage_key = document_key(owner.id, document.id)
    session.add(document)
    await session.flush()
    # Before the file is stored: a 402 leaves nothing behind.
    await indexing_charges.hold_for_indexing(
        session, owner.id, document.id, None, indexing_charges.upload_token_estimate(len(data))
    )
    await asyncio.to_thread(storage.put, document.storage_key, data)
    outbox.enqueue(session, TASKS.index_document, str(document.id), 1)

    async def undo(undo_session: AsyncSession) -> None:
        await undo_session.execute(sql_delete(Document).where(Document.id == document.id))
        await asyncio.to_thread(storage.delete, document.storage_key)

    outbox.on_dispatch_failure(session, undo)
    announce_status(session, bus, document)
    return document


async def get_owned(session: AsyncSession, owner: User, document_id: uuid.UUID) -> Document:
    document = await session.scalar(
        select(Document).where(Document.id == document_id, Document.owner_id == owner.id)
    )
    if document is None:
        raise NotFound("Document not found")
    return document


async def list_for_assistant(
    session: AsyncSession, owner: User, assistant_id: uuid.UUID, limit: int, cursor: str | None
) -> Page[Document]:
    await assistants.get_owned(session, owner, assistant_id)
    query = newest_first(
        select(Document).where(Document.assistant_id == assistant_id, Document.owner_id == owner.id),
        Document.created_at,
        Document.id,
        limit,
        cursor,
    )
    return page_of((await session.scalars(query)).all(), limit)


async def delete(session: AsyncSession, storage: FileStorage, owner: User, document_id: uuid.UUID) -> None:
    """The row goes with its chunks (foreign key cascade); the file goes once that has committed."""
    document = await get_owned(session, owner, document_id)
    await session.delete(document)
    await session.flush()
    remove_files_after_commit(session, storage, [document.storage_key])


async def search(
    owner_id: uuid.UUID,
    assistant_id: uuid.UUID,
    query: str,
    top_k: int | None,
    embed: retrieval.QueryEmbedder,
) -> list[retrieval.Hit]:
    """Hit-testing search. The checks and the search each take a pooled connection for milliseconds;
    none is held while a worker embeds the query, so slow embeddings cannot drain the pool."""
    async with unit_of_work() as session:
        owner = await auth.active_user(session, owner_id)
        assistant: Assistant = await assistants.get_owned(session, owner, assistant_id)
        settings = get_settings()
        top_k = top_k or assistant.retrieval_top_k or settings.retrieval_top_k
        min_score = assistant.retrieval_min_score
        if min_score is None:
            min_score = settings.retrieval_min_score
        if not await retrieval.has_chunks(session, assistant.id):
            return []
    vector = await embed(query)
    async with unit_of_work() as session:
        return await retrieval.search(session, owner_id, assistant_id, query, vector, top_k, min_score)
