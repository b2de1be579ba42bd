"""Documents' stored files, removed only once the unit of work that forgets their rows has committed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from models import Document
from services.knowledge.storage import FileStorage


async def forget_assistant_files(
    session: AsyncSession, storage: FileStorage, assistant_id: uuid.UUID
) -> None:
    """Before an assistant is deleted (its documents and chunks cascade): its stored files go too."""
    keys = (
        await session.scalars(select(Document.storage_key).where(Document.assistant_id == assistant_id))
    ).all()
    remove_files_after_commit(session, storage, list(keys))


def remove_files_after_commit(session: AsyncSession, storage: FileStorage, keys: Sequence[str]) -> None:
    if not keys:
        return

    async def remove() -> None:
        for key in keys:
            await asyncio.to_thread(storage.delete, key)

    outbox.after_commit(session, remove)
