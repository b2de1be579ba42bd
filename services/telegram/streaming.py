"""Showing an answer in Telegram while it is written: one message, edited at most once a second.

For assistants with ``telegram_streaming``. A tick reads the text the reply has so far from its
dialog's event stream (the deltas WebSocket clients get), and sends it as a message or edits that
message; the first part only, since a Telegram message holds 4096 characters. Once the reply is
finished, the chat's ordinary delivery (``sending``) edits the message into the final first part and
sends any further parts, so the chat always ends with the full text. Streaming is best effort: a tick
that cannot edit gives way to the next, and only the final delivery must succeed.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass

from redis.exceptions import LockError
from sqlalchemy import func, select, update
from telegram.error import BadRequest, TelegramError

from core.events import EventBus, dialog_topic
from core.redis import async_redis
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from models import TERMINAL_STATUSES, BotStatus, Message, SendState, TelegramBot, TelegramChat, TelegramSend
from services.chat.delivery import delivered_text, frames_from_replay
from services.telegram import bots, sending
from services.telegram.client import clients, redact
from services.telegram.limits import SendLimiter
from services.telegram.splitting import split_message

log = logging.getLogger("chatai.telegram")


@dataclass(frozen=True)
class _Stream:
    send_id: uuid.UUID
    bot_id: uuid.UUID
    chat_row_id: uuid.UUID
    chat_id: int
    token: str
    reply_id: uuid.UUID
    dialog_id: uuid.UUID
    message_id: int | None
    chars: int


def tick_seconds() -> float:
    # As often as the chat may receive a message (an edit counts as one), with the limiter's margin.
    settings = get_settings()
    return settings.telegram_chat_interval_seconds + settings.telegram_limit_margin_seconds


async def tick(send_key: str) -> float | None:
    """Show the answer owed under ``send_key`` as it is now. Returns the seconds until the next tick, or
    ``None`` when streaming is over (the reply finished, or the answer cannot be shown)."""
    first_look = await _streaming(send_key)
    if not isinstance(first_look, _Stream):
        return None if first_look is None else tick_seconds()  # False: an earlier answer goes first
    lock = async_redis().lock(
        sending.lock_key(first_look.chat_row_id), timeout=sending.LOCK_SECONDS, blocking=False
    )
    if not await lock.acquire():
        return tick_seconds()
    try:
        # Looked at again under the chat's lock: the final delivery may have run in between, and nothing
        # may be shown after it.
        stream = await _streaming(send_key)
        if not isinstance(stream, _Stream):
            return None if stream is None else tick_seconds()
        return await _show(stream)
    finally:
        with contextlib.suppress(LockError):
            await lock.release()


async def _streaming(send_key: str) -> _Stream | bool | None:
    """The answer to stream; ``False`` while it waits behind an earlier answer; ``None`` when it is done."""
    async with unit_of_work() as session:
        row = (
            await session.execute(
                select(TelegramSend, TelegramChat, TelegramBot, Message.status, Message.dialog_id)
                .join(TelegramChat, TelegramChat.id == TelegramSend.chat_row_id)
                .join(TelegramBot, TelegramBot.id == TelegramChat.bot_id)
                .join(Message, Message.id == TelegramSend.reply_id)
                .where(TelegramSend.key == send_key)
            )
        ).first()
        if row is None:
            return None
        send, chat, bot, status, dialog_id = row
        if (
            send.state != SendState.pending
            or status in TERMINAL_STATUSES
            or not chat.active
            or bot.status != BotStatus.active
        ):
            return None
        head = await session.scalar(
            select(func.min(TelegramSend.seq)).where(
                TelegramSend.chat_row_id == chat.id, TelegramSend.state == SendState.pending
            )
        )
        if head != send.seq:
            return False
        assert send.reply_id is not None
        return _Stream(
            send.id, bot.id, chat.id, chat.chat_id, bots.token_of(bot), send.reply_id, dialog_id,
            send.stream_message_id, send.stream_chars,
        )  # fmt: skip


async def _show(stream: _Stream) -> float | None:
    bus = EventBus(async_client=async_redis())
    frames = frames_from_replay(await bus.areplay(dialog_topic(stream.dialog_id), "0", count=100_000))
    text = delivered_text(frames, stream.reply_id)
    preview = split_message(text)[0] if text.strip() else ""
    if not preview.strip() or len(preview) == stream.chars:
        return tick_seconds()  # nothing new to show yet
    limiter = SendLimiter(async_redis())
    wait = await limiter.acquire(stream.bot_id, stream.chat_id, str(stream.send_id))
    if wait > 0:
        return wait
    client = await clients().bot(stream.token)
    message_id = stream.message_id
    try:
        if message_id is None:
            message_id = (await client.send_message(stream.chat_id, preview)).message_id
        else:
            await client.edit_message_text(preview, chat_id=stream.chat_id, message_id=message_id)
    except BadRequest as exc:
        if not sending.is_not_modified(exc):
            # The message was deleted or cannot be edited: the final delivery sends the answer anew.
            log.info(
                "streaming into chat %s stopped: %s", stream.chat_row_id, redact(exc.message, stream.token)
            )
            await sending.forget_stream_message(stream.send_id)
            return None
    except TelegramError as exc:
        outcome = await sending.handle_send_error(
            exc, stream.bot_id, stream.chat_row_id, stream.token, limiter
        )
        if outcome is None:
            return max(0.0, tick_seconds())
        if outcome.retry_in is not None:
            return max(outcome.retry_in, tick_seconds())
        return None  # the chat or the bot can no longer be sent to
    assert message_id is not None  # "not modified" answers only an edit, which had an id
    await _record(stream.send_id, message_id, len(preview))
    return tick_seconds()


async def _record(send_id: uuid.UUID, message_id: int, chars: int) -> None:
    async with unit_of_work() as session:
        await session.execute(
            update(TelegramSend)
            .where(TelegramSend.id == send_id, TelegramSend.state == SendState.pending)
            .values(stream_message_id=message_id, stream_chars=chars)
        )
