"""The ``telegram`` queue: handle each chat's updates in order, send what chats are owed, check webhooks.

A task that must wait (the chat is busy in another task, or a Telegram limit) is retried with a
countdown; no worker thread sleeps.
"""

from __future__ import annotations

import uuid

from celery import Task

from core.events import EventBus
from core.outbox import PendingTask
from core.queues import TASKS
from core.redis import async_redis
from core.settings import get_settings
from core.taskqueue import send, send_all
from core.unit_of_work import unit_of_work
from services.errors import Unavailable
from services.telegram import bots, inbox, sending, streaming
from tasks import TRANSIENT
from workers import loop
from workers.app import celery_app

TIME_LIMIT = 120


@celery_app.task(
    name=TASKS.telegram_handle_updates, bind=True, autoretry_for=TRANSIENT, retry_backoff=True,
    max_retries=None, acks_late=True,
)  # fmt: skip
def handle_updates(self: Task, bot_id: str, chat_key: str) -> None:
    again = loop.run(inbox.drain(uuid.UUID(bot_id), chat_key), timeout=TIME_LIMIT)
    if again is not None:
        raise self.retry(countdown=again, max_retries=None)


@celery_app.task(
    name=TASKS.telegram_deliver, bind=True, autoretry_for=TRANSIENT, retry_backoff=True,
    max_retries=None, acks_late=True,
)  # fmt: skip
def deliver_chat(self: Task, chat_row_id: str, failures: int = 0, claimed: bool = False) -> None:
    _follow(
        self,
        chat_row_id,
        loop.run(sending.deliver_chat(uuid.UUID(chat_row_id), claimed), timeout=TIME_LIMIT),
        failures,
    )


@celery_app.task(
    name=TASKS.telegram_reply_finished,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=8,
    acks_late=True,
)
def reply_finished(reply_id: str) -> None:
    chat_row_id = loop.run(sending.chat_of_reply(uuid.UUID(reply_id)), timeout=TIME_LIMIT)
    if chat_row_id is not None:
        outcome = loop.run(sending.deliver_chat(chat_row_id), timeout=TIME_LIMIT)
        _follow(None, str(chat_row_id), outcome, 0)


@celery_app.task(
    name=TASKS.telegram_stream_reply, bind=True, autoretry_for=TRANSIENT, retry_backoff=True,
    max_retries=None, acks_late=True,
)  # fmt: skip
def stream_reply(self: Task, send_key: str) -> None:
    """One look at a streamed answer; it comes back every second until the reply is finished."""
    again = loop.run(streaming.tick(send_key), timeout=TIME_LIMIT)
    if again is not None:
        raise self.retry(countdown=again, max_retries=None)


def _follow(task: Task | None, chat_row_id: str, outcome: sending.Outcome, failures: int) -> None:
    """Run the chat's delivery again when the outcome asks to; transient send errors count, up to the
    configured attempts."""
    if outcome.retry_in is None:
        return
    if outcome.error is not None:
        failures += 1
        if failures >= get_settings().telegram_send_max_attempts:
            loop.run(sending.fail_head(uuid.UUID(chat_row_id), outcome.error), timeout=TIME_LIMIT)
            failures = 0
    countdown = outcome.retry_in * (2 ** max(0, failures - 1)) if outcome.error else outcome.retry_in
    # The run that waits keeps the chat's delivery: its retry runs as the holder.
    if task is None:
        send(PendingTask(TASKS.telegram_deliver, (chat_row_id, failures, True), {"countdown": countdown}))
        return
    raise task.retry(args=(chat_row_id, failures, True), countdown=countdown, max_retries=None)


@celery_app.task(name=TASKS.telegram_sweep_sends, autoretry_for=TRANSIENT, max_retries=2)
def sweep_sends() -> int:
    """Start delivery for chats whose answers have waited too long (where a run holds the chat this returns
    at once; a hold lost with its worker lapses, and a later sweep starts the chat again)."""
    chats = loop.run(sending.stalled_chats(get_settings().telegram_send_sweep_seconds), timeout=TIME_LIMIT)
    send_all([PendingTask(TASKS.telegram_deliver, (str(chat_row_id),)) for chat_row_id in chats])
    return len(chats)


@celery_app.task(name=TASKS.telegram_check_webhooks, autoretry_for=TRANSIENT, max_retries=2)
def check_webhooks() -> dict[str, int]:
    return loop.run(_check_webhooks(), timeout=TIME_LIMIT)


async def _check_webhooks() -> dict[str, int]:
    async with unit_of_work() as session:
        counts = await bots.check_webhooks(session, EventBus(async_client=async_redis()))
    return counts


@celery_app.task(
    name=TASKS.telegram_sync_webhook, autoretry_for=(*TRANSIENT, Unavailable), retry_backoff=True,
    max_retries=8, acks_late=True,
)  # fmt: skip
def sync_webhook(bot_id: str) -> None:
    loop.run(_sync_webhook(uuid.UUID(bot_id)), timeout=TIME_LIMIT)


async def _sync_webhook(bot_id: uuid.UUID) -> None:
    async with unit_of_work() as session:
        await bots.sync_webhook(session, bot_id, EventBus(async_client=async_redis()))
