"""Operators: assigned to assistants (by accepting an owner's invitation, ``operator_invitations``); they
read those dialogs, take one over, answer by hand, and hand it back.

While a dialog is held (``Dialog.operator_id``), posting a user message queues no reply; the operator's
messages are assistant-role messages with ``author_id`` set, completed at once, published as
``reply.completed`` (what the widget and other WebSocket clients already render as an answer) and, for a
Telegram dialog, sent to its chat.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox, revocation
from core.events import EventBus, dialog_topic
from models import AssistantOperator, Dialog, Message, MessageRole, ReplyStatus, Role, TelegramChat, User
from services import assistants
from services.conversations import dialogs
from services.errors import Conflict, NotFound
from services.pagination import Page, newest_first, page_of
from services.telegram import handling


@dataclass(frozen=True)
class AssignedOperator:
    id: uuid.UUID
    email: str
    name: str | None
    created_at: datetime  # when they were assigned


async def unassign(
    session: AsyncSession, owner: User, assistant_id: uuid.UUID, user_id: uuid.UUID, bus: EventBus
) -> None:
    """Remove an operator from an assistant; the dialogs they held there go back to the assistant."""
    assistant = await assistants.get_owned(session, owner, assistant_id)
    removed = await session.execute(
        delete(AssistantOperator)
        .where(AssistantOperator.assistant_id == assistant.id, AssistantOperator.operator_id == user_id)
        .returning(AssistantOperator.operator_id)
    )
    if removed.first() is None:
        raise NotFound("Operator not assigned to this assistant")
    released = await session.scalars(
        update(Dialog)
        .where(Dialog.assistant_id == assistant.id, Dialog.operator_id == user_id)
        .values(operator_id=None)
        .returning(Dialog.id)
    )
    name = await _name(session, user_id)
    for dialog_id in released.all():
        _publish(session, bus, dialog_id, "dialog.operator_left", _operator_event(dialog_id, user_id, name))
    # Their open sockets may hold this assistant's dialogs: closed, they subscribe again to what they
    # may still see.
    sessions = [revocation.user_session(user_id)]
    revocation.announce_after_commit(session, sessions, revocation.ACCESS_CHANGED, "subscribe again")


async def list_assigned(
    session: AsyncSession, owner: User, assistant_id: uuid.UUID, limit: int, cursor: str | None
) -> Page[AssignedOperator]:
    assistant = await assistants.get_owned(session, owner, assistant_id)
    query = (
        select(User.id, User.email, User.name, AssistantOperator.created_at)
        .join(AssistantOperator, AssistantOperator.operator_id == User.id)
        .where(AssistantOperator.assistant_id == assistant.id)
    )
    query = newest_first(query, AssistantOperator.created_at, AssistantOperator.operator_id, limit, cursor)
    rows = (await session.execute(query)).all()
    return page_of([AssignedOperator(*row) for row in rows], limit)


async def take_over(session: AsyncSession, user: User, dialog_id: uuid.UUID, bus: EventBus) -> Dialog:
    """``user`` holds the dialog from now on; the assistant stops answering it on its own."""
    dialog = await _locked(session, user, dialog_id)
    if dialog.operator_id == user.id:
        return dialog
    if dialog.operator_id is not None:
        raise Conflict("Another operator holds this dialog")
    dialog.operator_id = user.id
    await session.flush()
    data = _operator_event(dialog.id, user.id, user.name)
    _publish(session, bus, dialog.id, "dialog.operator_joined", data)
    return dialog


async def release(session: AsyncSession, user: User, dialog_id: uuid.UUID, bus: EventBus) -> Dialog:
    """Hand the dialog back to the assistant: its holder, the dialog's owner or an admin may."""
    dialog = await _locked(session, user, dialog_id)
    holder = dialog.operator_id
    if holder is None:
        return dialog
    if holder != user.id and user.id != dialog.owner_id and user.role != Role.admin:
        raise Conflict("Another operator holds this dialog")
    dialog.operator_id = None
    await session.flush()
    data = _operator_event(dialog.id, holder, await _name(session, holder))
    _publish(session, bus, dialog.id, "dialog.operator_left", data)
    return dialog


async def post_message(
    session: AsyncSession, user: User, dialog_id: uuid.UUID, content: str, bus: EventBus
) -> Message:
    """The holding operator's answer: stored completed, published, and sent to a Telegram chat."""
    dialog = await _locked(session, user, dialog_id)
    if dialog.operator_id != user.id:
        raise Conflict("Take the dialog over before writing in it")
    message = Message(
        id=uuid.uuid4(), owner_id=dialog.owner_id, dialog_id=dialog.id, role=MessageRole.assistant,
        content=content, status=ReplyStatus.completed, author_id=user.id, completed_at=datetime.now(UTC),
    )  # fmt: skip
    session.add(message)
    await session.flush()
    chat = await session.scalar(
        select(TelegramChat).where(TelegramChat.dialog_id == dialog.id, TelegramChat.active)
    )
    if chat is not None:
        # The chat's ordered send queue, as for the bot's own answers.
        await handling.owe(session, chat, f"operator:{message.id}", text=content)
    # The fields of a generated reply's event, plus who wrote it.
    data: dict[str, Any] = {
        "reply_id": str(message.id),
        "content": content,
        "usage": {"prompt_tokens": None, "completion_tokens": None},
        "cost_micros": None,
        "citations": [],
        "author_id": str(user.id),
    }
    _publish(session, bus, dialog.id, "reply.completed", data)
    return message


async def _locked(session: AsyncSession, user: User, dialog_id: uuid.UUID) -> Dialog:
    """A dialog ``user`` may read, locked so takeovers and releases of it happen one at a time."""
    dialog = await dialogs.get_visible(session, user, dialog_id)
    await session.refresh(dialog, with_for_update=True)
    return dialog


def _publish(
    session: AsyncSession, bus: EventBus, dialog_id: uuid.UUID, kind: str, data: dict[str, Any]
) -> None:
    topic = dialog_topic(dialog_id)
    outbox.after_commit(session, lambda: bus.apublish(topic, kind, data))


async def _name(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    return await session.scalar(select(User.name).where(User.id == user_id))


def _operator_event(dialog_id: uuid.UUID, operator_id: uuid.UUID, name: str | None) -> dict[str, Any]:
    # Staff receive the id; widget visitors see only the name (services.conversations.visitor_view).
    return {"dialog_id": str(dialog_id), "operator_id": str(operator_id), "operator_name": name}
