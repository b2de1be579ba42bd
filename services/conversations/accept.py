"""Accepting an end user's message on the HTTP API: the turn's rows, its hold and its generation slot in
as few statements as the work needs (see ``queries``), with the behaviour of ``messages.post_message``.

Widget visitors' messages (widget budgets need the assistant row) and messages to a dialog an operator
holds take ``post_message``'s path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.queues import TASKS
from core.settings import get_settings
from models import Price, ReplyStatus, Role, User
from services.billing import holds, ledger, pricing
from services.conversations import chat_slots, messages, queries
from services.errors import Conflict, InsufficientBalance, NotFound
from services.providers.tokens import estimate_tokens


@dataclass(frozen=True)
class AcceptedMessage:
    id: uuid.UUID
    content: str
    created_at: datetime


@dataclass(frozen=True)
class AcceptedTurn:
    message: AcceptedMessage
    reply_id: uuid.UUID | None  # None while an operator holds the dialog
    reply_status: ReplyStatus | None


def _of(posted: messages.PostedMessage) -> AcceptedTurn:
    message = AcceptedMessage(posted.message.id, posted.message.content, posted.message.created_at)
    if posted.reply is None:
        return AcceptedTurn(message, None, None)
    return AcceptedTurn(message, posted.reply.id, posted.reply.status)


async def accept_message(
    session: AsyncSession,
    user: User,
    dialog_id: uuid.UUID,
    content: str,
    idempotency_key: str | None = None,
    request_id: str | None = None,
    via_widget: bool = False,
) -> AcceptedTurn:
    """``messages.post_message`` for the HTTP endpoint: the same answers, errors and effects."""
    if via_widget:
        return _of(
            await messages.post_message(
                session, user, dialog_id, content, idempotency_key, request_id, via_widget=True
            )
        )
    context = await queries.turn_context(session, dialog_id, user.id, any_owner=user.role == Role.admin)
    if context is None:
        raise NotFound("Dialog not found")
    if context.operator_id is not None:
        return _of(
            await messages.post_message(session, user, dialog_id, content, idempotency_key, request_id)
        )
    if idempotency_key:
        earlier = await messages.find_by_idempotency_key(session, context.owner_id, idempotency_key)
        if earlier is not None:
            return _of(messages.same_request_or_conflict(earlier, dialog_id, content))
    now = datetime.now(UTC)
    message_id, reply_id = uuid.uuid4(), uuid.uuid4()
    row = {
        "message_id": message_id, "reply_id": reply_id, "owner_id": context.owner_id, "dialog_id": dialog_id,
        "content": content, "idempotency_key": idempotency_key, "request_id": request_id, "now": now,
        "model": context.model, "max_tokens": context.max_tokens, "temperature": context.temperature,
        "system_prompt_id": context.prompt_version_id, "tokens": estimate_tokens(content),
    }  # fmt: skip
    # 429 here when the assistant is at its cap of concurrent generations; nothing is written then.
    await chat_slots.acquire(session, context.assistant_id, reply_id)
    billing, amount = get_settings().billing_enabled, 0
    if billing:
        if not context.priced:
            await chat_slots.release(context.assistant_id, reply_id)
            raise Conflict(
                "The assistant's model is no longer available; choose another (GET /api/models)",
                code="model_not_available",
            )
        price = Price(
            model=context.model, input_micros_per_mtok=context.input_micros_per_mtok,
            output_micros_per_mtok=context.output_micros_per_mtok, currency=context.price_currency,
        )  # fmt: skip
        # The prompt generation will use: the recorded version, then the dialog's instructions.
        system_prompt = "\n\n".join(p for p in (context.system_prompt, context.instructions) if p)
        amount = pricing.hold_micros(price, system_prompt, content, context.max_tokens)
    try:
        if idempotency_key is None:
            held = await _write(session, row, amount, billing)
        else:
            # Only an Idempotency-Key can collide: inside a savepoint, so the request can still answer.
            async with session.begin_nested():
                held = await _write(session, row, amount, billing)
    except IntegrityError:
        # A concurrent request with the same key won the race; answer with its rows.
        await chat_slots.release(context.assistant_id, reply_id)
        earlier = await messages.find_by_idempotency_key(session, context.owner_id, idempotency_key or "")
        if earlier is None:
            raise
        return _of(messages.same_request_or_conflict(earlier, dialog_id, content))
    if billing:
        if held is None:
            await chat_slots.release(context.assistant_id, reply_id)
            raise InsufficientBalance(
                "The balance does not cover a new reply",
                details={
                    "required_micros": amount,
                    "available_micros": await queries.available_micros(session, context.owner_id),
                },
            )
        ledger.announce(session, context.owner_id, *held)
    outbox.enqueue(session, TASKS.generate_reply, str(reply_id), 1)
    outbox.on_dispatch_failure(session, messages.undo_post(message_id, reply_id))
    return AcceptedTurn(AcceptedMessage(message_id, content, now), reply_id, ReplyStatus.queued)


async def _write(
    session: AsyncSession, row: dict[str, Any], amount: int, billing: bool
) -> tuple[int, int] | None:
    if not billing:
        await queries.insert_turn(session, row)
        return None
    return await queries.insert_turn_with_hold(
        session, row, amount, holds.hold_key(row["reply_id"]), row["now"]
    )
