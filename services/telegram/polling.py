"""Long polling for bots without a webhook, shared out among the bot pool's processes by Redis leases.

Each pool process announces itself (a sorted set scored by expiry) and takes at most its share of the
polled bots, ``ceil(bots / live processes)``, one lease per bot (a redis-py ``Lock`` whose token is
the process's id). It renews its leases
every third of their lifetime and polls only bots whose lease it holds, so each bot has exactly one
poller; when a process dies its leases and its presence expire and the others take its bots over.
A bot with a webhook is never polled (Telegram refuses getUpdates while a webhook is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from dataclasses import dataclass

from redis.asyncio.lock import Lock
from redis.exceptions import LockError
from sqlalchemy import select
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError

from core import secretbox
from core.events import EventBus
from core.outbox import PendingTask
from core.queues import TASKS
from core.redis import async_redis
from core.settings import get_settings
from core.unit_of_work import send_now, unit_of_work
from models import BotStatus, TelegramBot
from services.telegram import bots, inbox
from services.telegram.client import clients, redact, seconds

log = logging.getLogger("chatai.telegram.poller")

POLLERS_KEY = "chatai:tg:pollers"
LEASE_PREFIX = "chatai:tg:poll:"
OFFSET_PREFIX = "chatai:tg:offset:"


def lease_key(bot_id: object) -> str:
    return f"{LEASE_PREFIX}{bot_id}"


@dataclass(frozen=True)
class PolledBot:
    id: uuid.UUID
    token: str


class Poller:
    """One pool process's share of the polled bots."""

    def __init__(self, poller_id: str | None = None):
        self.id = poller_id or f"poller-{uuid.uuid4().hex[:12]}"
        self.tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.leases: dict[uuid.UUID, Lock] = {}
        settings = get_settings()
        self.lease_ms = int(settings.telegram_poll_lease_seconds * 1000)
        self.poll_timeout = settings.telegram_poll_timeout_seconds

    async def run(self, stop: asyncio.Event) -> None:
        log.info("poller %s started", self.id)
        try:
            while not stop.is_set():
                try:
                    await self.rebalance()
                except Exception:
                    log.exception("poller %s could not rebalance", self.id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.lease_ms / 3000)
        finally:
            await self.release_all()

    async def rebalance(self) -> None:
        client = async_redis()
        now_ms = int(time.time() * 1000)
        await client.zadd(POLLERS_KEY, {self.id: now_ms + self.lease_ms})
        await client.zremrangebyscore(POLLERS_KEY, "-inf", now_ms)
        pollers = max(1, await client.zcard(POLLERS_KEY))
        polled = {b.id: b for b in await _polled_bots()}
        share = math.ceil(len(polled) / pollers)
        for bot_id in list(self.tasks):
            # A poll that ended (the bot was disabled) gives its lease back; a live one is renewed.
            kept = bot_id in polled and not self.tasks[bot_id].done() and await _renewed(self.leases[bot_id])
            if not kept:
                await self._stop(bot_id)
        # More than our share (another process joined): hand the extra bots back.
        for bot_id in list(self.tasks)[share:]:
            await self._stop(bot_id)
        candidates = [b for b in polled.values() if b.id not in self.tasks]
        random.shuffle(candidates)
        for bot in candidates:
            if len(self.tasks) >= share:
                break
            lease = client.lock(lease_key(bot.id), timeout=self.lease_ms / 1000, thread_local=False)
            if await lease.acquire(blocking=False, token=self.id):
                log.info("poller %s polls bot %s", self.id, bot.id)
                self.leases[bot.id] = lease
                self.tasks[bot.id] = asyncio.create_task(self._poll(bot))

    async def _stop(self, bot_id: uuid.UUID) -> None:
        # The in-flight getUpdates is cancelled before the lease goes, so two polls never overlap.
        task = self.tasks.pop(bot_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        # A lease that lapsed meanwhile may be another process's now: that one is not ours to release.
        with contextlib.suppress(LockError):
            await self.leases.pop(bot_id).release()
        log.info("poller %s released bot %s", self.id, bot_id)

    async def release_all(self) -> None:
        for bot_id in list(self.tasks):
            await self._stop(bot_id)
        await async_redis().zrem(POLLERS_KEY, self.id)

    async def _poll(self, bot: PolledBot) -> None:
        client = async_redis()
        telegram = await clients().bot(bot.token)
        stored = await client.get(f"{OFFSET_PREFIX}{bot.id}")
        offset = int(stored) if stored else None
        while True:
            try:
                updates = await telegram.get_updates(
                    offset=offset, timeout=self.poll_timeout, allowed_updates=bots.ALLOWED_UPDATES
                )
            except InvalidToken:
                await _disable(bot.id)
                return
            except RetryAfter as exc:
                await asyncio.sleep(seconds(exc.retry_after))
                continue
            except (Conflict, TelegramError) as exc:
                # Conflict: a webhook was set meanwhile; the next rebalance stops polling this bot.
                log.warning("getUpdates failed for bot %s: %s", bot.id, redact(str(exc), bot.token))
                await asyncio.sleep(1.0)
                continue
            try:
                for update in updates:
                    chat_key = await inbox.accept(client, bot.id, update.to_dict())
                    if chat_key is not None:
                        task = PendingTask(TASKS.telegram_handle_updates, (str(bot.id), chat_key))
                        try:
                            await send_now([task])
                        except Exception:
                            # Unscheduled, so the update (fetched again: not confirmed) schedules anew.
                            await client.delete(inbox.scheduled_key(bot.id, chat_key))
                            raise
                    offset = update.update_id + 1
                    await client.set(f"{OFFSET_PREFIX}{bot.id}", offset)
            except Exception:
                log.exception("updates of bot %s could not be queued", bot.id)
                await asyncio.sleep(1.0)


async def _renewed(lease: Lock) -> bool:
    """Extend a lease to its full lifetime again, if it is still ours."""
    try:
        return bool(await lease.reacquire())
    except LockError:
        return False


async def _polled_bots() -> list[PolledBot]:
    async with unit_of_work() as session:
        rows = (
            await session.execute(
                select(TelegramBot.id, TelegramBot.token_encrypted).where(
                    TelegramBot.status == BotStatus.active, TelegramBot.webhook_url.is_(None)
                )
            )
        ).all()
    return [PolledBot(row.id, secretbox.decrypt(row.token_encrypted)) for row in rows]


async def _disable(bot_id: uuid.UUID) -> None:
    async with unit_of_work() as session:
        await bots.disable(
            session, bot_id, "Telegram rejected the bot token", EventBus(async_client=async_redis())
        )
