"""A ``/v1/chat/completions`` request becomes an ordinary dialog turn.

The request is stateless: its messages are the whole conversation. They are written into a new dialog
(source ``api``) before the turn, exactly as if the conversation had happened there: earlier user and
assistant messages as finished messages, the last user message as the question with its queued reply,
and the request's system messages as the dialog's instructions (they follow the assistant's system
prompt). Generation then reads history, instructions and knowledge the way it does for every dialog,
with no special case, and the owner sees the call in ``GET /api/dialogs`` and in analytics.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.events import EventBus
from core.redis import async_redis
from core.unit_of_work import unit_of_work
from models import Dialog, DialogSource, MessageRole
from services.accounts import api_keys
from services.accounts.api_keys import KeyHolder
from services.conversations import messages
from services.errors import Conflict, ServiceError

SYSTEM_ROLES = ("system", "developer")
TITLE_CHARS = 100


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    messages: Sequence[tuple[str, str]]  # (role, text): system, developer, user or assistant
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class StartedCompletion:
    dialog_id: uuid.UUID
    reply_id: uuid.UUID


async def start(
    session: AsyncSession, holder: KeyHolder, request: CompletionRequest, request_id: str | None
) -> StartedCompletion:
    """Write the conversation down, hold the reply's cost and enqueue its generation (after commit).

    404 ``model_not_found`` for an assistant the key may not use, 402 when the balance does not cover
    the reply, 429 when the assistant is at its cap of generations; nothing is written then."""
    assistant = await api_keys.usable_assistant(session, holder, request.model)
    instructions = [text for role, text in request.messages if role in SYSTEM_ROLES and text]
    conversation = [(role, text) for role, text in request.messages if role not in SYSTEM_ROLES]
    if not conversation or conversation[-1][0] != "user" or not conversation[-1][1].strip():
        raise ServiceError("The last message must be a user message with content")
    question = conversation[-1][1]
    dialog = Dialog(
        id=uuid.uuid4(), owner_id=holder.owner.id, assistant_id=assistant.id, source=DialogSource.api,
        title=" ".join(question.split())[:TITLE_CHARS], instructions="\n\n".join(instructions) or None,
        temperature=request.temperature, max_tokens=request.max_tokens,
    )  # fmt: skip
    history = [
        messages.written_message(dialog, MessageRole(role), text, request_id)
        for role, text in conversation[:-1]
        if text
    ]
    message, reply = messages.turn_rows(dialog, assistant, question, request_id)
    # One flush: the dialog first (the unit of work orders tables by their foreign keys), then the
    # messages in this order, which is the dialog's message order.
    session.add_all([dialog, *history, message, reply])
    await session.flush()
    await messages.queue_reply(session, dialog, assistant, message, reply)
    outbox.on_dispatch_failure(session, _undo_dialog(dialog.id))
    return StartedCompletion(dialog.id, reply.id)


def _undo_dialog(dialog_id: uuid.UUID):  # type: ignore[no-untyped-def]
    async def undo(session: AsyncSession) -> None:
        await session.execute(delete(Dialog).where(Dialog.id == dialog_id))

    return undo


async def cancel(session: AsyncSession, holder: KeyHolder, started: StartedCompletion) -> None:
    """Stop the reply of a completion whose client went away (nothing to do if it has ended)."""
    with contextlib.suppress(Conflict):  # it ended meanwhile
        await messages.cancel(session, holder.owner, started.reply_id, EventBus(async_client=async_redis()))


async def cancel_in_own_unit(holder: KeyHolder, started: StartedCompletion) -> None:
    """``cancel`` in a unit of work of its own (the request's has ended when a stream is dropped)."""
    async with unit_of_work() as session:
        await cancel(session, holder, started)
