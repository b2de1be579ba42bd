"""Handling one update: the chat's dialog, commands, and the user's message into the chat pipeline.

Everything an update causes is keyed on (bot, update_id): the user message through the pipeline's
idempotency key, the answer owed to the chat through ``TelegramSend.key``; handling it twice is harmless.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Chat, ChatMemberUpdated, Update

from core import outbox
from core.queues import TASKS
from models import Assistant, BotStatus, Dialog, DialogSource, TelegramBot, TelegramChat, TelegramSend, User
from services.conversations import messages
from services.errors import InsufficientBalance, RateLimited

log = logging.getLogger("chatai.telegram")

MAX_CONTENT_CHARS = 16000
RESET_TEXT = "Started a new conversation."
UNAVAILABLE_TEXT = "Sorry, this assistant cannot answer right now. Please try again later."
STREAM_FIRST_LOOK_SECONDS = 0.5  # about when the first words of a reply exist
_ACTIVE_MEMBER = {"member", "administrator", "creator", "restricted"}


class AssistantBusy(Exception):
    """The update cannot be handled yet; it stays first in its chat's queue for ``retry_after`` seconds."""

    def __init__(self, retry_after: float):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


async def handle_update(session: AsyncSession, bot_id: uuid.UUID, data: dict[str, Any]) -> str:
    """Apply one update; returns what was done (for logs and tests)."""
    parsed = Update.de_json(data, None)
    if parsed is None:
        return "ignored: empty"
    # The bot, its owner and the chat's row in one query: every message needs all three.
    chat_id = parsed.effective_chat.id if parsed.effective_chat else None
    row = (
        await session.execute(
            select(TelegramBot, User, TelegramChat)
            .join(User, User.id == TelegramBot.owner_id)
            .outerjoin(
                TelegramChat, (TelegramChat.bot_id == TelegramBot.id) & (TelegramChat.chat_id == chat_id)
            )
            .where(TelegramBot.id == bot_id)
        )
    ).first()
    if row is None or row[0].status != BotStatus.active:
        return "ignored: bot gone or disabled"
    bot, owner, known_chat = row
    if not owner.is_active:
        return "ignored: owner deactivated"  # the bot is disabled with the account; this covers the race
    if parsed.my_chat_member is not None:
        return await _membership(session, bot, parsed.my_chat_member)
    message = parsed.message
    if message is None:
        # Edits, button callbacks and channel posts are not part of a conversation with the assistant.
        return "ignored: not a new message"
    if message.from_user is None or message.from_user.is_bot:
        return "ignored: not from a person"
    if not message.text:
        return "ignored: not text"
    chat = await _chat_for(session, bot, message.chat, known_chat)
    key = send_key(bot.id, parsed.update_id)
    command = (
        message.text.split(maxsplit=1)[0].split("@", 1)[0].lower() if message.text.startswith("/") else ""
    )
    if command == "/start":
        assistant = await session.get_one(Assistant, bot.assistant_id)
        greeting = assistant.greeting or f"Hi! I'm {assistant.name}. Send me a message and I'll answer."
        await owe(session, chat, key, text=greeting)
        return "start"
    if command == "/reset":
        chat.dialog_id = (await _new_dialog(session, bot, message.chat)).id
        await owe(session, chat, key, text=RESET_TEXT)
        return "reset"
    try:
        async with session.begin_nested():
            posted = await messages.post_message(
                session, owner, chat.dialog_id, message.text[:MAX_CONTENT_CHARS], idempotency_key=f"tg:{key}"
            )
    except InsufficientBalance:
        await owe(session, chat, key, text=UNAVAILABLE_TEXT)
        return "refused: balance"
    except RateLimited as exc:
        # The assistant is at its cap of concurrent replies: the update waits in its chat's queue.
        raise AssistantBusy(exc.retry_after) from exc
    if posted.reply is None:
        return "message: an operator holds the dialog"  # the operator's messages are sent as they come
    await owe(session, chat, key, reply_id=posted.reply.id)
    assistant = await session.get_one(Assistant, bot.assistant_id)  # loaded with the dialog: no query
    if assistant.telegram_streaming:
        outbox.enqueue(session, TASKS.telegram_stream_reply, key, countdown=STREAM_FIRST_LOOK_SECONDS)
    return "message"


def send_key(bot_id: object, update_id: object) -> str:
    """The key of the answer an update is owed (also its entry among the bot's replies in flight)."""
    return f"{bot_id}:{update_id}"


async def owe(
    session: AsyncSession,
    chat: TelegramChat,
    key: str,
    *,
    text: str | None = None,
    reply_id: uuid.UUID | None = None,
) -> None:
    """Record an answer the chat is owed; a fixed text is sent now, a reply once it is finished."""
    await session.execute(
        insert(TelegramSend)
        .values(id=uuid.uuid4(), key=key, chat_row_id=chat.id, text=text, reply_id=reply_id)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    if text is not None:
        outbox.enqueue(session, TASKS.telegram_deliver, str(chat.id))


async def _chat_for(
    session: AsyncSession, bot: TelegramBot, chat: Chat, row: TelegramChat | None
) -> TelegramChat:
    if row is None:
        dialog = await _new_dialog(session, bot, chat)
        row = TelegramChat(
            bot_id=bot.id, owner_id=bot.owner_id, chat_id=chat.id, chat_type=chat.type, dialog_id=dialog.id
        )
        session.add(row)
        await session.flush()
    elif not row.active:
        row.active = True  # they wrote again, so they unblocked the bot
    return row


async def _new_dialog(session: AsyncSession, bot: TelegramBot, chat: Chat) -> Dialog:
    name = chat.title or (f"@{chat.username}" if chat.username else chat.full_name) or str(chat.id)
    dialog = Dialog(
        owner_id=bot.owner_id,
        assistant_id=bot.assistant_id,
        title=f"Telegram: {name}"[:300],
        source=DialogSource.telegram,
    )
    session.add(dialog)
    await session.flush()
    return dialog


async def _membership(session: AsyncSession, bot: TelegramBot, change: ChatMemberUpdated) -> str:
    """The bot was blocked, kicked, unblocked or added: sends to the chat stop or resume."""
    active = change.new_chat_member.status in _ACTIVE_MEMBER
    await session.execute(
        update(TelegramChat)
        .where(TelegramChat.bot_id == bot.id, TelegramChat.chat_id == change.chat.id)
        .values(active=active)
    )
    return "member" if active else "left"
