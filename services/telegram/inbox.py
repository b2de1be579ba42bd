"""Incoming updates: verified, deduplicated, and queued per chat in Redis so each chat is handled in order.

The webhook receiver and the long-polling pool both ``accept`` updates; a ``telegram`` task then takes
the chat's lock and handles its queued updates one at a time (other chats and bots run in parallel).
An update leaves its chat's queue only after it was handled, so a worker that dies mid-update leaves
it for the next task; handling is keyed on the update, so doing it twice writes nothing twice.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import LockError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update

from core import outbox
from core.queues import TASKS
from core.redis import async_redis
from core.security import hash_secret
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from models import BotStatus, TelegramBot
from services.errors import Forbidden, NotFound, ServiceError
from services.telegram import handling, limits

log = logging.getLogger("chatai.telegram")

PREFIX = "chatai:tg:"
DEDUP_SECONDS = 24 * 3600
INBOX_TTL_SECONDS = 7 * 24 * 3600
LOCK_SECONDS = 120
BUSY_RETRY_SECONDS = 0.3
# A chat waiting for one of its bot's in-flight places is woken when one frees up; failing that, it looks
# again after this long (spread, so a bot's waiting chats do not all come back at once).
PARKED_RETRY_SECONDS = (15.0, 20.0)
PARKED_FALLBACK_MS = 14_000  # shorter than the retry, so the retry that parks again sets a new one
MAX_UPDATES_PER_RUN = 20  # then the task yields to other chats and carries on in a new run
NO_CHAT = "0"  # updates without a chat (e.g. an inline callback) share one queue per bot

SCHEDULED_MS = 120_000
# KEYS: dedup key, inbox list, scheduled flag. ARGV: update JSON, dedup seconds, inbox ttl, flag ms.
# Queues the update unless it was seen before; returns 1 when no handling task is scheduled for the chat
# (the caller sends one), so a busy chat has one task at a time however many updates it gets.
_ACCEPT_LUA = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[4]) then return 1 end
return 0
"""


def inbox_key(bot_id: object, chat_key: str) -> str:
    return f"{PREFIX}inbox:{{{bot_id}:{chat_key}}}"


def lock_key(bot_id: object, chat_key: str) -> str:
    return f"{PREFIX}lock:in:{bot_id}:{chat_key}"


def fallback_key(bot_id: object, chat_key: str) -> str:
    return f"{PREFIX}fallback:{bot_id}:{chat_key}"


def scheduled_key(bot_id: object, chat_key: str) -> str:
    return f"{PREFIX}sched:{bot_id}:{chat_key}"


def chat_key_of(data: dict[str, Any]) -> str:
    update = Update.de_json(data, None)
    chat = update.effective_chat if update else None
    return str(chat.id) if chat else NO_CHAT


async def accept(
    client: aioredis.Redis, bot_id: object, data: dict[str, Any], raw: bytes | None = None
) -> str | None:
    """Queue the update for its chat unless it was accepted before. Returns the chat key when the caller
    must send a handling task for the chat, ``None`` when one is already scheduled."""
    chat_key = chat_key_of(data)
    dedup = f"{PREFIX}seen:{bot_id}:{int(data['update_id'])}"
    script = client.register_script(_ACCEPT_LUA)
    payload = raw if raw is not None else orjson.dumps(data)
    keys = [dedup, inbox_key(bot_id, chat_key), scheduled_key(bot_id, chat_key)]
    schedule = await script(keys=keys, args=[payload, DEDUP_SECONDS, INBOX_TTL_SECONDS, SCHEDULED_MS])
    return chat_key if schedule else None


# Each API process remembers an active bot's webhook secret briefly, so a webhook call costs no query.
# A bot disabled or deleted meanwhile has its updates ignored by the handler. A disabled bot is looked
# up on every call (Telegram rarely calls it), so updates count again as soon as it is re-enabled.
_SECRET_CACHE_SECONDS = 5.0
_secrets: dict[uuid.UUID, tuple[float, str, bool]] = {}


async def _webhook_secret(session: AsyncSession, bot_id: uuid.UUID) -> tuple[str, bool] | None:
    now = time.monotonic()
    cached = _secrets.get(bot_id)
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    row = (
        await session.execute(
            select(TelegramBot.webhook_secret, TelegramBot.status).where(TelegramBot.id == bot_id)
        )
    ).first()
    if row is None or row.status != BotStatus.active:
        _secrets.pop(bot_id, None)
        return None if row is None else (row.webhook_secret, False)
    if len(_secrets) > 10_000:
        _secrets.clear()
    _secrets[bot_id] = (now + _SECRET_CACHE_SECONDS, row.webhook_secret, True)
    return row.webhook_secret, True


async def receive_webhook(session: AsyncSession, bot_id: uuid.UUID, secret: str | None, body: bytes) -> None:
    """The webhook: check the bot's secret in constant time, parse, dedup, queue, and enqueue its handling."""
    known = await _webhook_secret(session, bot_id)
    if known is None:
        raise NotFound("Bot not found")
    expected, active = known
    if not hmac.compare_digest(hash_secret(secret or "").encode(), expected.encode()):
        raise Forbidden("The secret token does not match")
    if not active:
        return
    try:
        data = orjson.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise ValueError("no update_id")
        chat_key = await accept(async_redis(), bot_id, data, body)
    except (ValueError, TypeError, KeyError) as exc:
        raise ServiceError("The body is not a Telegram update") from exc
    if chat_key is not None:
        outbox.enqueue(session, TASKS.telegram_handle_updates, str(bot_id), chat_key)
        # If the task cannot be sent the request fails (Telegram delivers again); the flag must not stay.
        outbox.on_dispatch_failure(session, _unschedule(bot_id, chat_key))


def _unschedule(bot_id: object, chat_key: str) -> Callable[[AsyncSession], Awaitable[None]]:
    async def undo(_: AsyncSession) -> None:
        await async_redis().delete(scheduled_key(bot_id, chat_key))

    return undo


async def peek(client: aioredis.Redis, bot_id: object, chat_key: str) -> dict[str, Any] | None:
    raw = await client.lindex(inbox_key(bot_id, chat_key), 0)
    return orjson.loads(raw) if raw is not None else None


async def pop(client: aioredis.Redis, bot_id: object, chat_key: str) -> None:
    await client.lpop(inbox_key(bot_id, chat_key))


async def drain(bot_id: uuid.UUID, chat_key: str) -> float | None:
    """Handle the chat's queued updates in order. Returns the seconds after which to run again (the chat
    is busy in another task, the bot has as many replies in flight as it may, or there is more to do), or
    ``None`` when nothing is left for this task (its queue is empty, or it waits to be woken)."""
    client = async_redis()
    scheduled = scheduled_key(bot_id, chat_key)
    lock = client.lock(lock_key(bot_id, chat_key), timeout=LOCK_SECONDS, blocking=False)
    if not await lock.acquire():
        await client.set(scheduled, "1", px=SCHEDULED_MS)  # this task comes back: no other is needed
        return BUSY_RETRY_SECONDS
    try:
        for _ in range(MAX_UPDATES_PER_RUN):
            data = await peek(client, bot_id, chat_key)
            if data is None:
                # Unscheduled first, then looked at again: an update queued in between is not missed.
                await client.delete(scheduled)
                data = await peek(client, bot_id, chat_key)
                if data is None:
                    return None
            key = handling.send_key(bot_id, data.get("update_id"))
            if not await limits.start_reply(
                client, bot_id, key, chat_key, get_settings().telegram_bot_replies_in_flight
            ):
                # The bot cannot send faster than its limit: its further messages wait here, in its own
                # queue, instead of crowding other bots out of the llm queue. A place freed wakes the
                # chat; the long retry only covers a wake-up lost with a worker, and one is enough.
                await client.set(scheduled, "1", px=SCHEDULED_MS)
                if await client.set(fallback_key(bot_id, chat_key), "1", nx=True, px=PARKED_FALLBACK_MS):
                    return random.uniform(*PARKED_RETRY_SECONDS)
                return None
            try:
                async with unit_of_work() as session:
                    outcome = await handling.handle_update(session, bot_id, data)
            except (OperationalError, redis.RedisError):
                raise  # infrastructure: the task retries, the update stays first in line
            except handling.AssistantBusy as busy:
                await limits.replies_settled(client, bot_id, [key])
                await client.set(scheduled, "1", px=SCHEDULED_MS)
                return busy.retry_after
            except Exception:
                # A bad update must not hold its chat forever: it is logged and skipped.
                log.exception("update %s of bot %s could not be handled", data.get("update_id"), bot_id)
                outcome = "skipped: error"
            if outcome != "message":
                await limits.replies_settled(client, bot_id, [key])  # no reply to wait for
            log.info("update %s of bot %s: %s", data.get("update_id"), bot_id, outcome)
            await pop(client, bot_id, chat_key)
        await client.set(scheduled, "1", px=SCHEDULED_MS)
        return 0.0
    finally:
        with contextlib.suppress(LockError):
            await lock.release()
