"""Cancelling a running generation from any API process.

The API sets a key (for a worker that claims the reply later) and publishes on one channel; each
worker process holds a single subscription to that channel and wakes the generation it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from core.redis import async_redis
from core.settings import get_settings

CHANNEL = "chatai:cancel"
log = logging.getLogger("chatai.cancel")


def _key(reply_id: uuid.UUID) -> str:
    return f"chatai:cancel:{reply_id}"


async def request_cancel(reply_id: uuid.UUID) -> None:
    redis = async_redis()
    ttl = get_settings().reply_time_limit_seconds * 2
    await redis.set(_key(reply_id), b"1", ex=ttl)
    await redis.publish(CHANNEL, str(reply_id))


async def is_cancel_requested(reply_id: uuid.UUID) -> bool:
    return bool(await async_redis().exists(_key(reply_id)))


async def cancel_requested_among(reply_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Which of these replies have a cancel request, in one round trip."""
    if not reply_ids:
        return []
    flags = await async_redis().mget([_key(reply_id) for reply_id in reply_ids])
    return [reply_id for reply_id, flag in zip(reply_ids, flags, strict=True) if flag is not None]


class CancelWatcher:
    """Maps reply ids running in this process to events set when a cancel arrives."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, reply_id: uuid.UUID) -> asyncio.Event:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen())
        event = self._events[str(reply_id)] = asyncio.Event()
        return event

    def watch_existing(self, reply_id: uuid.UUID) -> None:
        event = self._events.get(str(reply_id))
        if event is not None:
            event.set()

    def unwatch(self, reply_id: uuid.UUID) -> None:
        self._events.pop(str(reply_id), None)

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = async_redis().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    event = self._events.get(message["data"].decode())
                    if event is not None:
                        event.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # the subscription must outlive Redis hiccups
                log.exception("cancel subscription lost; reconnecting")
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(1)
