"""Assistants: an owner's configured bots (system prompt, model, generation settings)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import revocation
from core.settings import get_settings
from models import Assistant, AssistantPrompt, User
from models.assistant import new_public_key
from services.billing import pricing
from services.errors import NotFound
from services.knowledge.files import forget_assistant_files
from services.knowledge.storage import get_storage
from services.pagination import Page, newest_first, page_of


async def create(session: AsyncSession, owner: User, fields: dict[str, Any]) -> Assistant:
    settings = get_settings()
    fields.setdefault("model", None)
    fields["model"] = fields["model"] or settings.llm_model
    await pricing.ensure_chat_model(session, fields["model"])
    if fields.get("max_tokens") is None:
        fields["max_tokens"] = settings.llm_default_max_tokens
    values = {k: v for k, v in fields.items() if v is not None}
    assistant = Assistant(owner_id=owner.id, **values)
    session.add(assistant)
    await session.flush()
    await _new_prompt_version(session, assistant)
    return assistant


async def _new_prompt_version(session: AsyncSession, assistant: Assistant) -> None:
    """Record the assistant's system prompt as a new version and make it the current one."""
    version = AssistantPrompt(
        id=uuid.uuid4(), assistant_id=assistant.id, system_prompt=assistant.system_prompt
    )
    session.add(version)
    assistant.prompt_version_id = version.id
    await session.flush()


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
    if "model" in changes and changes["model"] != assistant.model:
        await pricing.ensure_chat_model(session, changes["model"])
    prompt_changed = "system_prompt" in changes and changes["system_prompt"] != assistant.system_prompt
    for name, value in changes.items():
        setattr(assistant, name, value)
    await session.flush()
    if prompt_changed or assistant.prompt_version_id is None:
        await _new_prompt_version(session, assistant)
    return assistant


async def rotate_public_key(session: AsyncSession, owner: User, assistant_id: uuid.UUID) -> Assistant:
    """A new public key: the old one opens no more widget sessions or pages (open sessions run out)."""
    assistant = await get_owned(session, owner, assistant_id)
    assistant.public_key = new_public_key()
    await session.flush()
    return assistant


async def delete(session: AsyncSession, owner: User, assistant_id: uuid.UUID) -> None:
    assistant = await get_owned(session, owner, assistant_id)
    # Its documents and chunks cascade in the database; their stored files go after the commit.
    await forget_assistant_files(session, get_storage(), assistant.id)
    await session.delete(assistant)
    await session.flush()
    ended = [revocation.widget_assistant_session(assistant.id)]
    revocation.announce_after_commit(session, ended, revocation.REVOKED, revocation.WIDGET_SESSION_ENDED)
