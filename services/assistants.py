"""Assistants: an owner's configured bots (system prompt, model, generation settings)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import revocation
from core.settings import get_settings
from models import Assistant, User
from services.errors import NotFound
from services.pagination import Page, newest_first, page_of


async def create(session: AsyncSession, owner: User, fields: dict[str, Any]) -> Assistant:
    settings = get_settings()
    fields.setdefault("model", None)
    fields["model"] = fields["model"] or settings.llm_model
    if fields.get("max_tokens") is None:
        fields["max_tokens"] = settings.llm_default_max_tokens
    values = {k: v for k, v in fields.items() if v is not None}
    assistant = Assistant(owner_id=owner.id, **values)
    session.add(assistant)
    await session.flush()
    return assistant


async def get_owned(session: AsyncSession, owner: User, assistant_id: uuid.UUID) -> Assistant:
    assistant = await session.scalar(
        select(Assistant).where(Assistant.id == assistant_id, Assistant.owner_id == owner.id)
    )
    if assistant is None:
        raise NotFound("Assistant not found")
    return assistant


async def list_owned(session: AsyncSession, owner: User, limit: int, cursor: str | None) -> Page[Assistant]:
    query = newest_first(
        select(Assistant).where(Assistant.owner_id == owner.id),
        Assistant.created_at,
        Assistant.id,
        limit,
        cursor,
    )
    return page_of((await session.scalars(query)).all(), limit)


async def update(
    session: AsyncSession, owner: User, assistant_id: uuid.UUID, changes: dict[str, Any]
) -> Assistant:
    assistant = await get_owned(session, owner, assistant_id)
    for name, value in changes.items():
        setattr(assistant, name, value)
    await session.flush()
    return assistant


async def delete(session: AsyncSession, owner: User, assistant_id: uuid.UUID) -> None:
    assistant = await get_owned(session, owner, assistant_id)
    # Its documents and chunks cascade in the database; their stored files go after the commit.
    from services.knowledge.documents import forget_assistant_files
    from services.knowledge.storage import get_storage

    await forget_assistant_files(session, get_storage(), assistant.id)
    await session.delete(assistant)
    await session.flush()
    ended = [revocation.widget_assistant_session(assistant.id)]
    revocation.announce_after_commit(session, ended, revocation.REVOKED, revocation.WIDGET_SESSION_ENDED)
