"""Posting user messages (with their queued replies), reading them back, and cancelling replies."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.events import EventBus, dialog_topic
from core.queues import TASKS
from core.redis import async_redis
from core.settings import get_settings
from models import TERMINAL_STATUSES, Assistant, Dialog, Message, MessageRole, ReplyStatus, Role, User
from services.billing import holds
from services.chat import cancellation
from services.conversations import chat_slots, dialogs, widget_budget
from services.errors import Conflict, InsufficientBalance, NotFound, ServiceError
from services.pagination import Page
from services.providers.tokens import estimate_tokens


@dataclass(frozen=True)
class PostedMessage:
    message: Message
    # None while an operator holds the dialog: the assistant does not answer then.
    reply: Message | None


async def post_message(
    session: AsyncSession,
    user: User,
    dialog_id: uuid.UUID,
    content: str,
    idempotency_key: str | None = None,
    request_id: str | None = None,
    via_widget: bool = False,
) -> PostedMessage:
    """Write the user message and its queued reply, and enqueue the generation after commit.

    While an operator holds the dialog only the user message is written, and it is published on the
    dialog's topic for the operator to see. The same ``idempotency_key`` within the window returns the
    first request's rows and enqueues nothing. A widget visitor's message also counts against the
    assistant's widget budgets (429 when one is spent).
    """
    # The assistant comes along for the reply's generation settings (a query fewer on the hottest endpoint).
    dialog, assistant = await dialogs.get_writable_with_assistant(session, user, dialog_id)
    if idempotency_key:
        earlier = await find_by_idempotency_key(session, dialog.owner_id, idempotency_key)
        if earlier is not None:
            return same_request_or_conflict(earlier, dialog_id, content)
    if via_widget:
        await widget_budget.enforce(session, assistant)
    message, reply = turn_rows(dialog, assistant, content, request_id, idempotency_key)
    held = dialog.operator_id is not None
    rows = [message] if held else [message, reply]
    if idempotency_key is None:
        session.add_all(rows)
        await session.flush()
    else:
        try:
            # Added inside the savepoint: begin_nested() flushes what is pending before it starts.
            async with session.begin_nested():
                session.add_all(rows)
                await session.flush()
        except IntegrityError:
            # A concurrent request with the same key won the race; answer with its rows.
            earlier = await find_by_idempotency_key(session, dialog.owner_id, idempotency_key)
            if earlier is None:
                raise
            return same_request_or_conflict(earlier, dialog_id, content)
    if held:
        _publish_created(session, message)
        return PostedMessage(message, None)
    await queue_reply(session, dialog, assistant, message, reply, via_widget=via_widget)
    return PostedMessage(message, reply)


def turn_rows(
    dialog: Dialog,
    assistant: Assistant,
    content: str,
    request_id: str | None,
    idempotency_key: str | None = None,
) -> tuple[Message, Message]:
    """A user message and its queued reply, not yet added to the session.

    The reply's generation settings are fixed now (the assistant's, with the dialog's own temperature and
    a max_tokens it may only lower): the hold is priced from them and the worker uses them, so changing
    the assistant later cannot make this reply cost more than was held."""
    # Both rows with the same columns set, so one flush writes them in one INSERT (in this order: seq).
    message = written_message(dialog, MessageRole.user, content, request_id, idempotency_key)
    reply = Message(
        id=uuid.uuid4(), owner_id=dialog.owner_id, dialog_id=dialog.id, role=MessageRole.assistant,
        content="", status=ReplyStatus.queued, reply_to_id=message.id,
        idempotency_key=None, request_id=request_id, completed_at=None,
        model=assistant.model,
        max_tokens=min(assistant.max_tokens, dialog.max_tokens or assistant.max_tokens),
        temperature=assistant.temperature if dialog.temperature is None else dialog.temperature,
        system_prompt_id=assistant.prompt_version_id, tokens=None,
    )  # fmt: skip
    return message, reply


def written_message(
    dialog: Dialog,
    role: MessageRole,
    content: str,
    request_id: str | None,
    idempotency_key: str | None = None,
) -> Message:
    """A finished message of ``role`` (the end user's, or an earlier answer given as history)."""
    return Message(
        id=uuid.uuid4(), owner_id=dialog.owner_id, dialog_id=dialog.id, role=role,
        content=content, status=ReplyStatus.completed, reply_to_id=None,
        idempotency_key=idempotency_key, request_id=request_id, completed_at=datetime.now(UTC),
        model=None, max_tokens=None, temperature=None, system_prompt_id=None, tokens=estimate_tokens(content),
    )  # fmt: skip


async def queue_reply(
    session: AsyncSession,
    dialog: Dialog,
    assistant: Assistant,
    message: Message,
    reply: Message,
    via_widget: bool = False,
) -> None:
    """Take a generation slot and the reply's hold for rows already flushed, and enqueue its generation
    after commit (undone if the task cannot be sent)."""
    # 429 here when the assistant is at its cap of concurrent generations; nothing is written either.
    await chat_slots.acquire(session, dialog.assistant_id, reply.id)
    if get_settings().billing_enabled:
        # 402 insufficient_balance here rolls the whole request back: nothing written, nothing queued.
        # Last before the commit: the balance row stays locked for as short a time as possible.
        try:
            # The prompt generation will use: the recorded version, then the dialog's instructions.
            system_prompt = "\n\n".join(p for p in (assistant.system_prompt, dialog.instructions) if p)
            await holds.hold_for_reply(session, dialog.owner_id, reply, system_prompt, message.content)
        except ServiceError as exc:
            await chat_slots.release(dialog.assistant_id, reply.id)
            if via_widget and isinstance(exc, InsufficientBalance):
                # The owner's balance is none of an anonymous visitor's business.
                raise InsufficientBalance("The assistant cannot answer right now") from None
            raise
    outbox.enqueue(session, TASKS.generate_reply, str(reply.id), reply.attempt)
    outbox.on_dispatch_failure(session, undo_post(message.id, reply.id))


def _publish_created(session: AsyncSession, message: Message) -> None:
    """``message.created`` with the message as ``GET /api/messages/{id}`` shows it."""
    data: dict[str, Any] = {
        "id": str(message.id), "dialog_id": str(message.dialog_id), "role": message.role.value,
        "content": message.content, "status": message.status.value, "error": None,
        "usage": {"prompt_tokens": None, "completion_tokens": None}, "cost_micros": None,
        "citations": [], "created_at": message.created_at.isoformat(),
        "completed_at": message.completed_at.isoformat() if message.completed_at else None,
        "author_id": None,
    }  # fmt: skip
    topic, bus = dialog_topic(message.dialog_id), EventBus(async_client=async_redis())
    outbox.after_commit(session, lambda: bus.apublish(topic, "message.created", data))


def undo_post(message_id: uuid.UUID, reply_id: uuid.UUID) -> Callable[[AsyncSession], Awaitable[None]]:
    async def undo(session: AsyncSession) -> None:
        await holds.release_hold(session, reply_id)
        await session.execute(delete(Message).where(Message.id.in_([reply_id, message_id])))

    return undo


async def find_by_idempotency_key(
    session: AsyncSession, owner_id: uuid.UUID, key: str
) -> PostedMessage | None:
    window_start = datetime.now(UTC) - timedelta(seconds=get_settings().idempotency_window_seconds)
    message = await session.scalar(
        select(Message).where(Message.owner_id == owner_id, Message.idempotency_key == key)
    )
    if message is None:
        return None
    if message.created_at < window_start:
        # The key has expired: it may be used again.
        message.idempotency_key = None
        await session.flush()
        return None
    reply = await session.scalar(select(Message).where(Message.reply_to_id == message.id))
    return PostedMessage(message, reply)


def same_request_or_conflict(earlier: PostedMessage, dialog_id: uuid.UUID, content: str) -> PostedMessage:
    if earlier.message.dialog_id != dialog_id or earlier.message.content != content:
        raise Conflict("This Idempotency-Key was used for a different request")
    return earlier


async def get_visible(session: AsyncSession, user: User, message_id: uuid.UUID) -> Message:
    query = select(Message).where(Message.id == message_id)
    if user.role == Role.operator:
        # Also the messages of the dialogs of the operator's assigned assistants.
        readable = dialogs.readable_by(user)
        assert readable is not None  # only an admin reads every dialog
        query = query.join(Dialog, Dialog.id == Message.dialog_id).where(readable)
    elif user.role != Role.admin:
        query = query.where(Message.owner_id == user.id)
    message = await session.scalar(query)
    if message is None:
        raise NotFound("Message not found")
    return message


async def list_for_dialog(
    session: AsyncSession, user: User, dialog_id: uuid.UUID, limit: int, cursor: str | None
) -> Page[Message]:
    await dialogs.get_visible(session, user, dialog_id)
    query = select(Message).where(Message.dialog_id == dialog_id)
    if cursor:
        if not cursor.isdigit():
            raise ServiceError("The cursor is not valid")
        query = query.where(Message.seq > int(cursor))
    rows = (await session.scalars(query.order_by(Message.seq).limit(limit + 1))).all()
    if len(rows) > limit:
        return Page(rows[:limit], str(rows[limit - 1].seq))
    return Page(rows, None)


async def cancel(session: AsyncSession, user: User, reply_id: uuid.UUID, bus: EventBus) -> Message:
    """Stop a reply: a queued one ends ``cancelled`` here; a generating one is told to stop by its worker."""
    reply = await get_visible(session, user, reply_id)
    if reply.role != MessageRole.assistant:
        raise Conflict("Only assistant replies can be cancelled")
    if reply.status in TERMINAL_STATUSES:
        raise Conflict(f"The reply is already {reply.status.value}")
    if reply.status == ReplyStatus.queued:
        result = await session.execute(
            update(Message)
            .where(Message.id == reply.id, Message.status == ReplyStatus.queued)
            .values(status=ReplyStatus.cancelled, completed_at=datetime.now(UTC))
            .returning(Message.id)
        )
        if result.first() is not None:
            await session.refresh(reply)
            outbox.enqueue(session, TASKS.settle_reply, str(reply.id))
            topic, data = dialog_topic(reply.dialog_id), {"reply_id": str(reply.id), "content": ""}
            outbox.after_commit(session, lambda: bus.apublish(topic, "reply.cancelled", data))
            return reply
    outbox.after_commit(session, lambda: cancellation.request_cancel(reply.id))
    return reply
