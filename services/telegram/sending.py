"""Sending what a chat is owed, in order, within Telegram's limits, each part once.

One task at a time per chat (a Redis lock) walks the chat's pending sends oldest first. A reply is sent
once it is terminal, split into parts of at most 4096 characters; each accepted part is recorded before
the next goes, so a redelivered task resumes after the last part Telegram accepted. A streamed answer
(``services.telegram.streaming``) already has a message on screen: its first part is an edit of that
message. When a limit says wait, the caller retries the task after that long; no worker sleeps.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import LockError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from core.db import raw_connection
from core.events import EventBus
from core.redis import async_redis
from core.unit_of_work import unit_of_work
from models import (
    TERMINAL_STATUSES,
    BotStatus,
    ReplyStatus,
    SendState,
    TelegramBot,
    TelegramChat,
    TelegramSend,
)
from services.telegram import bots, limits, queries
from services.telegram.client import clients, redact, seconds
from services.telegram.limits import SendLimiter
from services.telegram.splitting import split_message

log = logging.getLogger("chatai.telegram")

LOCK_SECONDS = 60
# A run's hold on a chat's delivery outlasts its wait by this much; a run lost with its worker frees it then.
SCHEDULED_SECONDS = 90
BUSY_RETRY_SECONDS = 0.5
MAX_PARTS_PER_RUN = 50  # then the task yields to other chats and carries on in a new run
FAILED_TEXT = "Sorry, I could not answer that. Please try again."
# After the part of a reply that failed midway: a chat shows no status, so without it the cut text would
# read as the whole answer.
CUT_OFF_TEXT = "(The answer was cut off. Please try again.)"


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``retry_in`` asks the task to run again after that many seconds; ``error`` marks a
    transient failure (network, 5xx) that counts toward the task's attempts."""

    retry_in: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class _Next:
    send_id: uuid.UUID
    key: str
    bot_id: uuid.UUID
    owner_id: uuid.UUID
    token: str
    chat_id: int
    part_index: int
    parts: list[str]
    edit_message_id: int | None  # the streamed message this part replaces, if any


def lock_key(chat_row_id: object) -> str:
    return f"chatai:tg:lock:out:{chat_row_id}"


async def chat_of_reply(reply_id: uuid.UUID) -> uuid.UUID | None:
    """The chat a reply is owed to (``None``: the reply is not a Telegram one)."""
    async with raw_connection() as conn:
        return await queries.chat_of_reply(conn, reply_id)


async def stalled_chats(older_than: float, limit: int = 1000) -> list[uuid.UUID]:
    """Chats owed an answer that has been ready to send for longer than ``older_than`` seconds."""
    async with raw_connection() as conn:
        return await queries.stalled_chats(conn, older_than, limit)


def scheduled_key(chat_row_id: object) -> str:
    return f"chatai:tg:out:sched:{chat_row_id}"


async def deliver_chat(chat_row_id: uuid.UUID, claimed: bool = False) -> Outcome:
    """Send what the chat is owed, in order. One run at a time holds a chat's delivery (a Redis flag,
    kept while the run waits for a limit): a run that finds it held returns at once, since the holder
    sends everything due. ``claimed``: this run is the holder's retry."""
    redis = async_redis()
    scheduled = scheduled_key(chat_row_id)
    if not claimed and not await redis.set(scheduled, "1", nx=True, ex=SCHEDULED_SECONDS):
        return Outcome()
    while True:
        outcome = await _deliver_locked(chat_row_id)
        if outcome.retry_in is not None:
            await redis.set(scheduled, "1", ex=int(outcome.retry_in) + SCHEDULED_SECONDS)
            return outcome
        # Let go, then look once more: a reply that finished while this run was ending is not left behind
        # (its own request found the flag still held).
        await redis.delete(scheduled)
        if await _next_part(chat_row_id) is None:
            return outcome
        if not await redis.set(scheduled, "1", nx=True, ex=SCHEDULED_SECONDS):
            return outcome  # another run took it over


async def _deliver_locked(chat_row_id: uuid.UUID) -> Outcome:
    redis = async_redis()
    lock = redis.lock(lock_key(chat_row_id), timeout=LOCK_SECONDS, blocking=False)
    if not await lock.acquire():
        # A streamed answer is being shown in this chat right now; come back in a moment.
        return Outcome(retry_in=BUSY_RETRY_SECONDS)
    try:
        limiter = SendLimiter(redis)
        for _ in range(MAX_PARTS_PER_RUN):
            nxt = await _next_part(chat_row_id)
            if nxt is None:
                return Outcome()
            wait = await limiter.acquire(nxt.bot_id, nxt.chat_id, nxt.key)
            if wait > 0:
                return Outcome(retry_in=wait)
            outcome = await _send(nxt, chat_row_id, limiter)
            if outcome is not None:
                return outcome
        return Outcome(retry_in=0.0)
    finally:
        with contextlib.suppress(LockError):
            await lock.release()


_TERMINAL = {str(status) for status in TERMINAL_STATUSES}


async def _next_part(chat_row_id: uuid.UUID) -> _Next | None:
    """The next part to send, or ``None`` when nothing is due (all sent, or the head reply is unfinished)."""
    while True:
        async with raw_connection() as conn:
            row = await queries.next_send(conn, chat_row_id)
        if row is None:
            return None
        if not row["chat_active"] or row["bot_status"] != BotStatus.active:
            reason = "chat inactive" if not row["chat_active"] else "bot disabled"
            async with unit_of_work() as session:
                await _drop_pending(session, row["bot_id"], chat_row_id, reason)
            return None
        text = _text_of(row)
        if text is None:
            return None  # the reply is still being generated; its end enqueues this again
        parts = split_message(text)
        if row["parts_sent"] >= len(parts):
            async with raw_connection() as conn:
                await queries.mark_sent(conn, row["id"])
            await limits.replies_settled(async_redis(), row["bot_id"], [row["key"]])
            continue
        return _Next(
            row["id"], row["key"], row["bot_id"], row["owner_id"], bots.decrypt_token(row["token_encrypted"]),
            row["chat_id"], row["parts_sent"], parts,
            row["stream_message_id"] if row["parts_sent"] == 0 else None,
        )  # fmt: skip


def _text_of(row: dict[str, Any]) -> str | None:
    if row["reply_id"] is None:
        return row["text"] or ""
    if row["found_reply_id"] is None:
        return ""
    if row["reply_status"] not in _TERMINAL:
        return None
    if row["reply_status"] == ReplyStatus.failed:
        return failed_reply_text(row["reply_content"] or "")
    content: str | None = row["reply_content"]
    return content


def failed_reply_text(content: str) -> str:
    """What a chat is sent for a reply that failed after generating ``content``."""
    return f"{content.rstrip()}\n\n{CUT_OFF_TEXT}" if content.strip() else FAILED_TEXT


async def _send(nxt: _Next, chat_row_id: uuid.UUID, limiter: SendLimiter) -> Outcome | None:
    """Send one part; ``None`` means carry on with the next part."""
    client = await clients().bot(nxt.token)
    text = nxt.parts[nxt.part_index]
    try:
        if nxt.edit_message_id is not None:
            await client.edit_message_text(text, chat_id=nxt.chat_id, message_id=nxt.edit_message_id)
            message_id = nxt.edit_message_id
        else:
            message_id = (await client.send_message(nxt.chat_id, text)).message_id
    except BadRequest as exc:
        if is_not_modified(exc):
            await _record_part(nxt, nxt.edit_message_id)
        elif nxt.edit_message_id is not None:
            # The streamed message is gone (deleted by the user) or too old to edit: send the part anew.
            await forget_stream_message(nxt.send_id)
        else:
            await _fail_send(nxt.bot_id, nxt.send_id, redact(exc.message, nxt.token))
        return None
    except TelegramError as exc:
        return await handle_send_error(exc, nxt.bot_id, chat_row_id, nxt.token, limiter)
    await _record_part(nxt, message_id)
    return None


def is_not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


async def handle_send_error(
    exc: TelegramError, bot_id: uuid.UUID, chat_row_id: uuid.UUID, token: str, limiter: SendLimiter
) -> Outcome | None:
    """What a refused send or edit means for the bot and the chat (``BadRequest`` is the caller's):
    ``None`` to go on at once, else how the run ends."""
    if isinstance(exc, RetryAfter):
        pause = seconds(exc.retry_after)
        await limiter.pause(bot_id, pause)
        await _set_paused(bot_id, pause)
        log.warning("bot %s rate limited by Telegram for %ss", bot_id, pause)
        return Outcome(retry_in=pause)
    if isinstance(exc, Forbidden):
        await _deactivate_chat(bot_id, chat_row_id, redact(exc.message, token))
        return Outcome()
    if isinstance(exc, InvalidToken):
        await _disable_bot(bot_id, "Telegram rejected the bot token")
        return Outcome()
    if isinstance(exc, ChatMigrated):
        await _migrate_chat(chat_row_id, exc.new_chat_id)
        return None  # the same part again, to the new chat id
    if isinstance(exc, TimedOut | NetworkError):  # network faults and 5xx answers
        return Outcome(retry_in=1.0, error=redact(str(exc), token))
    raise exc


async def forget_stream_message(send_id: uuid.UUID) -> None:
    async with unit_of_work() as session:
        await session.execute(
            update(TelegramSend).where(TelegramSend.id == send_id).values(stream_message_id=None)
        )


async def _record_part(nxt: _Next, message_id: int | None) -> None:
    done = nxt.part_index + 1 >= len(nxt.parts)
    async with raw_connection() as conn:
        await queries.record_part(conn, nxt.send_id, nxt.part_index, message_id, done)
    if done:
        await limits.replies_settled(async_redis(), nxt.bot_id, [nxt.key])


async def fail_head(chat_row_id: uuid.UUID, error: str) -> None:
    """Give up on the chat's oldest pending send (its transient errors outlasted the attempts)."""
    async with unit_of_work() as session:
        row = (
            await session.execute(
                select(TelegramSend.id, TelegramChat.bot_id)
                .join(TelegramChat, TelegramChat.id == TelegramSend.chat_row_id)
                .where(TelegramSend.chat_row_id == chat_row_id, TelegramSend.state == SendState.pending)
                .order_by(TelegramSend.seq)
                .limit(1)
            )
        ).first()
    if row is not None:
        await _fail_send(row.bot_id, row.id, error)


async def _fail_send(bot_id: uuid.UUID, send_id: uuid.UUID, error: str) -> None:
    log.warning("telegram send %s failed: %s", send_id, error)
    async with unit_of_work() as session:
        key = await session.scalar(
            update(TelegramSend)
            .where(TelegramSend.id == send_id)
            .values(state=SendState.failed, error=error[:500])
            .returning(TelegramSend.key)
        )
    await limits.replies_settled(async_redis(), bot_id, [key] if key else [])


async def _drop_pending(
    session: AsyncSession, bot_id: uuid.UUID, chat_row_id: uuid.UUID, reason: str
) -> None:
    keys = await session.scalars(
        update(TelegramSend)
        .where(TelegramSend.chat_row_id == chat_row_id, TelegramSend.state == SendState.pending)
        .values(state=SendState.dropped, error=reason)
        .returning(TelegramSend.key)
    )
    await limits.replies_settled(async_redis(), bot_id, list(keys))


async def _deactivate_chat(bot_id: uuid.UUID, chat_row_id: uuid.UUID, reason: str) -> None:
    """The user blocked the bot, or it was removed from the group: no more sends, no retries."""
    async with unit_of_work() as session:
        await session.execute(update(TelegramChat).where(TelegramChat.id == chat_row_id).values(active=False))
        await _drop_pending(session, bot_id, chat_row_id, reason)


async def _disable_bot(bot_id: uuid.UUID, reason: str) -> None:
    async with unit_of_work() as session:
        await bots.disable(session, bot_id, reason, EventBus(async_client=async_redis()))


async def _set_paused(bot_id: uuid.UUID, pause: float) -> None:
    async with unit_of_work() as session:
        await session.execute(
            update(TelegramBot)
            .where(TelegramBot.id == bot_id)
            .values(paused_until=datetime.now(UTC) + timedelta(seconds=pause))
        )


async def _migrate_chat(chat_row_id: uuid.UUID, new_chat_id: int) -> None:
    """A group became a supergroup with a new id; its row follows it."""
    async with unit_of_work() as session:
        await session.execute(
            update(TelegramChat)
            .where(TelegramChat.id == chat_row_id)
            .values(chat_id=new_chat_id, chat_type="supergroup")
        )
