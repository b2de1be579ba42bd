"""Dialogs: one conversation between an end user and an assistant."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Assistant, AssistantOperator, Dialog, Role, User
from services import assistants
from services.errors import NotFound
from services.pagination import Page, newest_first, page_of


async def create(session: AsyncSession, owner: User, assistant_id: uuid.UUID, title: str | None) -> Dialog:
    assistant = await assistants.get_owned(session, owner, assistant_id)
    dialog = Dialog(owner_id=owner.id, assistant_id=assistant.id, title=title)
    session.add(dialog)
    await session.flush()
    return dialog


def readable_by(user: User) -> ColumnElement[bool] | None:
    """The condition on ``Dialog`` for the dialogs ``user`` may read (``None``: every dialog, for admins).

    Owners read their own; operators also read the dialogs of the assistants they are assigned to.
    """
    if user.role == Role.admin:
        return None
    if user.role == Role.operator:
        return or_(Dialog.owner_id == user.id, Dialog.assistant_id.in_(_assigned(user)))
    return Dialog.owner_id == user.id


def _assigned(operator: User) -> Select[uuid.UUID]:
    return select(AssistantOperator.assistant_id).where(AssistantOperator.operator_id == operator.id)


async def _ensure_assistant_visible(session: AsyncSession, user: User, assistant_id: uuid.UUID) -> None:
    """An assistant named in a filter must be one whose dialogs ``user`` may read: another tenant's is as
    absent as a missing one (404), rather than an empty list."""
    query = select(Assistant.id).where(Assistant.id == assistant_id)
    if user.role == Role.operator:
        query = query.where(or_(Assistant.owner_id == user.id, Assistant.id.in_(_assigned(user))))
    elif user.role != Role.admin:
        query = query.where(Assistant.owner_id == user.id)
    if await session.scalar(query) is None:
        raise NotFound("Assistant not found")


def _visible(user: User) -> Select[Dialog]:
    condition = readable_by(user)
    return select(Dialog) if condition is None else select(Dialog).where(condition)


def _writable(user: User) -> Select[Dialog]:
    # Writing as the end user stays with the owner (and admins): operators answer by operator messages.
    return select(Dialog) if user.role == Role.admin else select(Dialog).where(Dialog.owner_id == user.id)


async def get_visible(session: AsyncSession, user: User, dialog_id: uuid.UUID) -> Dialog:
    dialog = await session.scalar(_visible(user).where(Dialog.id == dialog_id))
    if dialog is None:
        raise NotFound("Dialog not found")
    return dialog


async def get_writable_with_assistant(
    session: AsyncSession, user: User, dialog_id: uuid.UUID
) -> tuple[Dialog, Assistant]:
    """A dialog ``user`` may post end-user messages to, and its assistant, in one query.

    The assistant then stays in the session's identity map."""
    query = _writable(user).add_columns(Assistant).join(Assistant, Assistant.id == Dialog.assistant_id)
    row = (await session.execute(query.where(Dialog.id == dialog_id))).first()
    if row is None:
        raise NotFound("Dialog not found")
    return row[0], row[1]


async def list_visible(
    session: AsyncSession, user: User, limit: int, cursor: str | None, assistant_id: uuid.UUID | None = None
) -> Page[Dialog]:
    query = _visible(user)
    if assistant_id is not None:
        await _ensure_assistant_visible(session, user, assistant_id)
        query = query.where(Dialog.assistant_id == assistant_id)
    query = newest_first(query, Dialog.created_at, Dialog.id, limit, cursor)
    return page_of((await session.scalars(query)).all(), limit)
