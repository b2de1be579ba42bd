"""Replies' settlements in batches: a finished reply's id waits in a Redis list, and one billing task
books every waiting reply, many per database transaction (``holds.settle_replies``).

Only a reply queued while no settle task is scheduled sends one, its own (a flag with a short expiry):
a quiet system settles each reply by its own task as before, and a busy second costs one task rather
than one per reply. The task's own reply is in its message, redelivered if its worker dies; an id that
worker had taken from the list is not lost for good either: its hold stays open, and the sweep of stale
holds (beat, ``billing_hold_sweep_seconds``) settles it. Settling is keyed on the reply, so however an
id comes round again, it is booked once.
"""

from __future__ import annotations

import uuid

from core.redis import async_redis

PENDING_KEY = "chatai:billing:pending-replies"
SCHEDULED_KEY = "chatai:billing:settle-scheduled"
# A scheduled task that never ran (its message lost) stops holding back new ones after this long.
SCHEDULED_TTL_SECONDS = 30


async def queue_reply(reply_id: uuid.UUID) -> bool:
    """Queue a finished reply's settlement; True when the caller must send the settle task."""
    async with async_redis().pipeline(transaction=False) as pipe:
        pipe.rpush(PENDING_KEY, str(reply_id))
        pipe.set(SCHEDULED_KEY, b"1", nx=True, ex=SCHEDULED_TTL_SECONDS)
        _, scheduled = await pipe.execute()
    return bool(scheduled)


async def open_schedule() -> None:
    """Called by the settle task before it takes ids: an id queued from now on schedules another task."""
    await async_redis().delete(SCHEDULED_KEY)


async def take(limit: int) -> list[uuid.UUID]:
    """Up to ``limit`` waiting reply ids, oldest first, removed from the list."""
    raw: list[bytes] | None = await async_redis().lpop(PENDING_KEY, limit)  # type: ignore[assignment]
    return [uuid.UUID(item.decode()) for item in raw or []]


async def put_back(reply_ids: list[uuid.UUID]) -> None:
    """Return ids whose batch failed (its transaction rolled back), for the task's retry."""
    if reply_ids:
        await async_redis().lpush(PENDING_KEY, *(str(reply_id) for reply_id in reversed(reply_ids)))


async def waiting() -> int:
    return int(await async_redis().llen(PENDING_KEY))
