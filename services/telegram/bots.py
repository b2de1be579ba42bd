"""Connecting bots to assistants: validate the token with getMe, keep it encrypted, register the webhook."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import WebhookInfo
from telegram.error import InvalidToken, TelegramError

from core import outbox, secretbox
from core.events import EventBus, user_topic
from core.queues import TASKS
from core.security import hash_secret
from core.settings import get_settings
from models import BotStatus, TelegramBot, User
from services import assistants
from services.errors import Conflict, NotFound, ServiceError, Unavailable
from services.pagination import Page, newest_first, page_of
from services.telegram.client import clients, redact

log = logging.getLogger("chatai.telegram")

# Updates Telegram sends us; anything else (inline queries, polls, …) is never delivered.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
# "<bot id>:<secret>": checked before the token goes into any URL.
_TOKEN_SHAPE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,100}$")
OWNER_DEACTIVATED = "The owner's account is deactivated"
TOKEN_REJECTED = "Telegram rejected the bot token"
PAUSED_BY_OWNER = "Paused by its owner"


class InvalidBotToken(ServiceError):
    status = 422
    code = "invalid_bot_token"


def token_of(bot: TelegramBot) -> str:
    return decrypt_token(bot.token_encrypted)


@functools.lru_cache(maxsize=4096)
def decrypt_token(encrypted: bytes) -> str:
    """The bot token (kept decrypted per process: a busy bot sends many messages a second)."""
    return secretbox.decrypt(encrypted)


def webhook_url_for(bot_id: uuid.UUID) -> str:
    return f"{get_settings().public_base_url.rstrip('/')}/api/telegram/webhook/{bot_id}"


async def connect(session: AsyncSession, owner: User, assistant_id: uuid.UUID, token: str) -> TelegramBot:
    assistant = await assistants.get_owned(session, owner, assistant_id)
    token = token.strip()
    if not _TOKEN_SHAPE.match(token):
        raise InvalidBotToken("This is not a bot token")
    client = await clients().bot(token)
    try:
        me = await client.get_me()
    except InvalidToken as exc:
        raise InvalidBotToken("Telegram rejected this bot token") from exc
    except TelegramError as exc:
        log.warning("getMe failed: %s", redact(str(exc), token))
        raise Unavailable("Telegram could not be reached; nothing was connected") from exc
    if await session.scalar(select(TelegramBot.id).where(TelegramBot.telegram_id == me.id)):
        raise Conflict("This bot is already connected")
    bot = TelegramBot(
        owner_id=owner.id,
        assistant_id=assistant.id,
        telegram_id=me.id,
        username=me.username or str(me.id),
        token_encrypted=secretbox.encrypt(token),
        # Replaced by each webhook registration; until then a secret nobody holds.
        webhook_secret=hash_secret(secrets.token_urlsafe(32)),
    )
    session.add(bot)
    await session.flush()
    await _register(bot, token)
    await session.flush()
    return bot


async def _register(bot: TelegramBot, token: str) -> None:
    """Point Telegram at our webhook, or (polling mode) make sure it has none so the bot pool can poll."""
    settings = get_settings()
    client = await clients().bot(token)
    try:
        if settings.use_telegram_webhooks:
            url = webhook_url_for(bot.id)
            # A new secret each time: only its hash is stored, so it cannot be sent again.
            secret = secrets.token_urlsafe(32)
            await client.set_webhook(
                url,
                secret_token=secret,
                allowed_updates=ALLOWED_UPDATES,
                max_connections=settings.telegram_webhook_max_connections,
            )
            bot.webhook_url = url
            bot.webhook_secret = hash_secret(secret)
        else:
            await client.delete_webhook()
            bot.webhook_url = None
    except InvalidToken as exc:
        raise InvalidBotToken("Telegram rejected this bot token") from exc
    except TelegramError as exc:
        log.warning("webhook registration failed for bot %s: %s", bot.id, redact(str(exc), token))
        raise Unavailable("Telegram could not be reached; nothing was connected") from exc


async def get_owned(session: AsyncSession, owner: User, bot_id: uuid.UUID) -> TelegramBot:
    bot = await session.scalar(
        select(TelegramBot).where(TelegramBot.id == bot_id, TelegramBot.owner_id == owner.id)
    )
    if bot is None:
        raise NotFound("Bot not found")
    return bot


async def list_owned(session: AsyncSession, owner: User, limit: int, cursor: str | None) -> Page[TelegramBot]:
    query = newest_first(
        select(TelegramBot).where(TelegramBot.owner_id == owner.id),
        TelegramBot.created_at,
        TelegramBot.id,
        limit,
        cursor,
    )
    return page_of((await session.scalars(query)).all(), limit)


async def delete(session: AsyncSession, owner: User, bot_id: uuid.UUID) -> None:
    bot = await get_owned(session, owner, bot_id)
    token = token_of(bot)
    try:
        await (await clients().bot(token)).delete_webhook()
    except InvalidToken:
        pass  # the token was revoked: Telegram holds no webhook for it any more
    except TelegramError as exc:
        log.warning("deleteWebhook failed for bot %s: %s", bot.id, redact(str(exc), token))
        raise Unavailable("Telegram could not be reached; the bot is still connected") from exc
    await session.delete(bot)
    await session.flush()


async def disable(session: AsyncSession, bot_id: uuid.UUID, reason: str, bus: EventBus) -> None:
    """Stop using a bot (its token was rejected, its owner deactivated), and tell its owner."""
    owner_id = await session.scalar(
        update(TelegramBot)
        .where(TelegramBot.id == bot_id, TelegramBot.status == BotStatus.active)
        .values(status=BotStatus.disabled, disabled_reason=reason, updated_at=datetime.now(UTC))
        .returning(TelegramBot.owner_id)
    )
    if owner_id is not None:
        _publish_status(session, bus, owner_id, bot_id, BotStatus.disabled, reason)


async def pause(session: AsyncSession, owner: User, bot_id: uuid.UUID, bus: EventBus) -> TelegramBot:
    """The owner stops the bot answering until resumed: disabled, its webhook (or polling) stopped after
    the commit. A bot that is not active is returned as it is."""
    bot = await get_owned(session, owner, bot_id)
    if bot.status == BotStatus.active:
        await disable(session, bot.id, PAUSED_BY_OWNER, bus)
        outbox.enqueue(session, TASKS.telegram_sync_webhook, str(bot.id))
        await session.refresh(bot)
    return bot


async def resume(session: AsyncSession, owner: User, bot_id: uuid.UUID, bus: EventBus) -> TelegramBot:
    """A bot its owner paused answers again (its webhook registered after the commit); one the system
    disabled (Telegram rejected its token) is ``409``: it needs a new token."""
    bot = await get_owned(session, owner, bot_id)
    if bot.status == BotStatus.active:
        return bot
    if bot.disabled_reason != PAUSED_BY_OWNER:
        raise Conflict(
            f"The bot was disabled ({bot.disabled_reason}); delete it and connect it again",
            code="bot_disabled",
        )
    await session.execute(
        update(TelegramBot)
        .where(TelegramBot.id == bot.id)
        .values(status=BotStatus.active, disabled_reason=None, updated_at=datetime.now(UTC))
    )
    _publish_status(session, bus, owner.id, bot.id, BotStatus.active, None)
    outbox.enqueue(session, TASKS.telegram_sync_webhook, str(bot.id))
    await session.refresh(bot)
    return bot


def _publish_status(
    session: AsyncSession,
    bus: EventBus,
    owner_id: uuid.UUID,
    bot_id: uuid.UUID,
    status: BotStatus,
    reason: str | None,
) -> None:
    data = {"bot_id": str(bot_id), "status": status.value, "reason": reason}
    outbox.after_commit(session, lambda: bus.apublish(user_topic(owner_id), "bot.status", data))


async def suspend_owned(session: AsyncSession, owner_id: uuid.UUID, bus: EventBus) -> None:
    """A deactivated account's bots stop answering (and spending) now; their webhooks go after the commit."""
    bot_ids = await session.scalars(
        select(TelegramBot.id).where(TelegramBot.owner_id == owner_id, TelegramBot.status == BotStatus.active)
    )
    for bot_id in bot_ids.all():
        await disable(session, bot_id, OWNER_DEACTIVATED, bus)
        outbox.enqueue(session, TASKS.telegram_sync_webhook, str(bot_id))


async def resume_owned(session: AsyncSession, owner_id: uuid.UUID, bus: EventBus) -> None:
    """A reactivated account gets back the bots its deactivation stopped (not those Telegram refused)."""
    resumed = await session.scalars(
        update(TelegramBot)
        .where(
            TelegramBot.owner_id == owner_id,
            TelegramBot.status == BotStatus.disabled,
            TelegramBot.disabled_reason == OWNER_DEACTIVATED,
        )
        .values(status=BotStatus.active, disabled_reason=None, updated_at=datetime.now(UTC))
        .returning(TelegramBot.id)
    )
    for bot_id in resumed.all():
        _publish_status(session, bus, owner_id, bot_id, BotStatus.active, None)
        outbox.enqueue(session, TASKS.telegram_sync_webhook, str(bot_id))


async def sync_webhook(session: AsyncSession, bot_id: uuid.UUID, bus: EventBus) -> None:
    """Make Telegram match the bot's status: the webhook registered while it is active, removed while not.

    Raises ``Unavailable`` while Telegram cannot be reached (the task retries)."""
    bot = await session.scalar(select(TelegramBot).where(TelegramBot.id == bot_id).with_for_update())
    if bot is None:
        return
    token = token_of(bot)
    if bot.status == BotStatus.active:
        try:
            await _register(bot, token)
        except InvalidBotToken:
            await disable(session, bot.id, TOKEN_REJECTED, bus)
    else:
        try:
            await (await clients().bot(token)).delete_webhook()
        except InvalidToken:
            pass  # Telegram holds no webhook for a token it rejects
        except TelegramError as exc:
            log.warning("deleteWebhook failed for bot %s: %s", bot.id, redact(str(exc), token))
            raise Unavailable("Telegram could not be reached") from exc
        bot.webhook_url = None
    await session.flush()


async def check_webhooks(session: AsyncSession, bus: EventBus) -> dict[str, int]:
    """Beat's health check: record each webhook bot's pending updates and last error; re-register a
    webhook whose URL Telegram no longer has."""
    bots = (
        await session.scalars(
            select(TelegramBot).where(
                TelegramBot.status == BotStatus.active, TelegramBot.webhook_url.is_not(None)
            )
        )
    ).all()
    counts = {"checked": 0, "reregistered": 0, "disabled": 0, "unreachable": 0}
    gate = asyncio.Semaphore(10)

    async def check(bot: TelegramBot) -> tuple[str, WebhookInfo | None]:
        token = token_of(bot)
        client = await clients().bot(token)
        async with gate:
            try:
                info = await client.get_webhook_info()
                if info.url != bot.webhook_url:
                    await _register(bot, token)
                    return "reregistered", info
            except InvalidToken:
                return "disabled", None
            except (TelegramError, ServiceError) as exc:
                log.warning("webhook check failed for bot %s: %s", bot.id, redact(str(exc), token))
                return "unreachable", None
        return "checked", info

    # Telegram is asked concurrently; the session is used one bot at a time.
    for bot, (outcome, info) in zip(bots, await asyncio.gather(*(check(b) for b in bots)), strict=True):
        counts[outcome] += 1
        if outcome == "disabled":
            await disable(session, bot.id, TOKEN_REJECTED, bus)
        if info is not None:
            bot.pending_update_count = info.pending_update_count
            bot.last_webhook_error = info.last_error_message[:500] if info.last_error_message else None
            bot.webhook_checked_at = datetime.now(UTC)
    await session.flush()
    return counts


async def reencrypt_tokens(session: AsyncSession) -> int:
    """Every bot token encrypted again under the first of ``CHATAI_TELEGRAM_TOKEN_KEYS`` (after a key
    rotation, or to leave the keys once derived from the JWT secret); returns how many."""
    bots = (await session.scalars(select(TelegramBot))).all()
    for bot in bots:
        bot.token_encrypted = secretbox.rotate(bot.token_encrypted)
    await session.flush()
    return len(bots)
