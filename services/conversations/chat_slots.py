"""The cap on concurrent generations per assistant: a Redis sorted set of its open replies.

A reply takes a slot when its message is accepted (queued replies count: they are work the assistant
owes). A slot is given back when the reply has ended, which the next refused request checks in Postgres
for the slots it finds taken, so nothing in the generation path has to remember to release; a slot whose
reply never ends (or whose request was rolled back) expires with its lease.
"""

from __future__ import annotations

import time
import uuid
from typing import cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.redis import async_redis
from core.settings import get_settings
from models import TERMINAL_STATUSES, Message
from services.errors import RateLimited

KEY_PREFIX = "chatai:gen-slots:"
# A slot whose reply is not in the database may belong to a request that has not committed yet: it is
# given back only once it is older than this.
SETTLE_SECONDS = 10.0
RETRY_AFTER_SECONDS = 2

# KEYS: the assistant's set. ARGV: now, lease end, cap, reply id, key ttl. 1 = taken, 0 = full.
_ACQUIRE_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _key(assistant_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{assistant_id}"


async def _try(assistant_id: uuid.UUID, reply_id: uuid.UUID, cap: int, lease: int) -> bool:
    now = time.time()
    taken = await async_redis().register_script(_ACQUIRE_LUA)(
        keys=[_key(assistant_id)], args=[now, now + lease, cap, str(reply_id), lease]
    )
    return bool(taken)


async def _release_ended(session: AsyncSession, assistant_id: uuid.UUID, lease: int) -> int:
    """Give back the slots of replies that have ended, or that were never committed; how many."""
    client = async_redis()
    # redis-py types every shape zrange can answer; with scores on a client that does not decode, it is
    # (member bytes, score) pairs.
    members = cast(list[tuple[bytes, float]], await client.zrange(_key(assistant_id), 0, -1, withscores=True))
    if not members:
        return 0
    slots = {uuid.UUID(member.decode()): lease_end for member, lease_end in members}
    rows = await session.execute(select(Message.id, Message.status).where(Message.id.in_(list(slots))))
    status = {reply_id: reply_status for reply_id, reply_status in rows}
    settled_before = time.time() + lease - SETTLE_SECONDS
    ended = [
        str(reply_id)
        for reply_id, lease_end in slots.items()
        if status.get(reply_id) in TERMINAL_STATUSES
        or (reply_id not in status and lease_end < settled_before)
    ]
    if ended:
        await client.zrem(_key(assistant_id), *ended)
    return len(ended)


async def acquire(session: AsyncSession, assistant_id: uuid.UUID, reply_id: uuid.UUID) -> None:
    """Take a slot for this reply or raise ``RateLimited`` when the assistant is at its cap."""
    settings = get_settings()
    if not settings.rate_limits_enabled:
        return
    cap, lease = settings.max_concurrent_generations_per_assistant, settings.generation_slot_lease_seconds
    if await _try(assistant_id, reply_id, cap, lease):
        return
    if await _release_ended(session, assistant_id, lease) and await _try(assistant_id, reply_id, cap, lease):
        return
    raise RateLimited(
        f"This assistant is already generating {cap} replies; retry when one has ended",
        RETRY_AFTER_SECONDS,
        details={"limit": "concurrent_generations"},
    )


async def release(assistant_id: uuid.UUID, reply_id: uuid.UUID) -> None:
    await async_redis().zrem(_key(assistant_id), str(reply_id))
