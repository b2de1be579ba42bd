"""Telegram's send limits, shared by every worker through Redis.

One Lua script checks every window a message counts against (the bot's 30/s, the chat's 1/s, a group's
20/min) and the bot's pause after a 429, and records the message in all of them or in none. The ``limits``
library counts one limit at a time, which would spend a chat's slot on a message the bot's limit then
refuses. The clock is Redis's, so workers on different machines agree.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.typing import EncodableT

from core.outbox import PendingTask
from core.queues import TASKS
from core.settings import get_settings
from core.unit_of_work import send_now

PREFIX = "chatai:tg:rl:"
BOT_MARGIN_SECONDS = 0.05

# KEYS: pause key, the bot's line of waiting sends, then one sorted set per window (the bot's first).
# ARGV: message id, sender id, line spacing ms, then (limit, window ms) per window.
# Returns 0 when the message may go now (and records it), else the milliseconds to wait. A send held by
# the bot's own limit joins the bot's line and is told to come back after the ones ahead of it, one slot
# apart: a busy bot's waiting chats then come back one at a time, not all at every freed slot.
_ACQUIRE_LUA = """
local paused = redis.call('PTTL', KEYS[1])
if paused > 0 then return paused end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait, bot_wait = 0, 0
for i = 3, #KEYS do
  local limit = tonumber(ARGV[i * 2 - 2])
  local window = tonumber(ARGV[i * 2 - 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
    if i == 3 then bot_wait = w end
  end
end
if wait > 0 then
  if bot_wait >= wait then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
    redis.call('ZADD', KEYS[2], 'NX', now, ARGV[2])
    redis.call('PEXPIRE', KEYS[2], 60000)
    wait = wait + redis.call('ZRANK', KEYS[2], ARGV[2]) * tonumber(ARGV[3])
  end
  return wait
end
for i = 3, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[i * 2 - 1]))
end
redis.call('ZREM', KEYS[2], ARGV[2])
return 0
"""


@dataclass(frozen=True)
class Window:
    key: str
    limit: int
    seconds: float


def pause_key(bot_id: object) -> str:
    return f"{PREFIX}pause:{bot_id}"


def line_key(bot_id: object) -> str:
    return f"{PREFIX}line:{bot_id}"


def windows_for(bot_id: object, chat_id: int) -> list[Window]:
    settings = get_settings()
    margin = settings.telegram_limit_margin_seconds
    windows = [
        # The bot's window gets a fixed small margin: a larger one would cost a busy bot its throughput.
        Window(f"{PREFIX}bot:{bot_id}", settings.telegram_bot_messages_per_second, 1.0 + BOT_MARGIN_SECONDS),
        Window(f"{PREFIX}chat:{bot_id}:{chat_id}", 1, settings.telegram_chat_interval_seconds + margin),
    ]
    if chat_id < 0:  # groups and channels have negative ids
        windows.append(
            Window(
                f"{PREFIX}group:{bot_id}:{chat_id}", settings.telegram_group_messages_per_minute, 60 + margin
            )
        )
    return windows


class SendLimiter:
    def __init__(self, client: aioredis.Redis):
        self._client = client
        self._script = client.register_script(_ACQUIRE_LUA)

    async def acquire(self, bot_id: object, chat_id: int, sender: str | None = None) -> float:
        """Count one message if every limit allows it now (returns 0.0), else the seconds to wait.
        ``sender`` names what is sending (the same on each attempt), so it keeps its place in the bot's
        line of waiting sends."""
        windows = windows_for(bot_id, chat_id)
        bot_window = windows[0]
        spacing_ms = int(bot_window.seconds * 1000 / bot_window.limit)
        args: list[EncodableT] = [uuid.uuid4().hex, sender or uuid.uuid4().hex, spacing_ms]
        for window in windows:
            args += [window.limit, int(window.seconds * 1000)]
        keys = [pause_key(bot_id), line_key(bot_id), *(w.key for w in windows)]
        wait_ms = await self._script(keys=keys, args=args)
        return int(wait_ms) / 1000

    async def pause(self, bot_id: object, seconds: float) -> None:
        """Hold every send of this bot (Telegram answered 429), and no other bot's."""
        await self._client.set(pause_key(bot_id), "1", px=max(1, int(seconds * 1000)))


# Replies a bot has in the pipeline (handled, not yet sent): a sorted set of send keys scored by start time.
# Entries older than this are forgotten, so a lost removal cannot hold a bot back for long.
IN_FLIGHT_STALE_SECONDS = 600


def in_flight_key(bot_id: object) -> str:
    return f"{PREFIX}inflight:{bot_id}"


def waiting_key(bot_id: object) -> str:
    """The bot's chats whose next update waits for one of its in-flight places, oldest first."""
    return f"{PREFIX}waiting:{bot_id}"


# KEYS: the bot's in-flight set, its waiting chats. ARGV: stale before, limit, now, send key, ttl, chat key.
# 1 if the reply may start; else 0, and the chat waits in line to be woken when a place frees up.
_START_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[6])
return 1
"""

# KEYS: the bot's in-flight set, its waiting chats. ARGV: the settled send keys.
# Returns the chats to wake: as many of the longest waiting as places were freed.
_SETTLED_LUA = """
local freed = redis.call('ZREM', KEYS[1], unpack(ARGV))
if freed == 0 then return {} end
local popped = redis.call('ZPOPMIN', KEYS[2], freed)
local chats = {}
for i = 1, #popped, 2 do chats[#chats + 1] = popped[i] end
return chats
"""


async def start_reply(
    client: aioredis.Redis, bot_id: object, send_key: str, chat_key: str, limit: int
) -> bool:
    """Take one of the bot's in-flight places for this answer (atomically, across workers); ``False``
    when they are all taken, and then the chat is woken (``replies_settled``) when one frees up. Taking
    it again for the same answer succeeds."""
    now = time.time()
    args: list[EncodableT] = [
        now - IN_FLIGHT_STALE_SECONDS, limit, now, send_key, IN_FLIGHT_STALE_SECONDS, chat_key,
    ]  # fmt: skip
    keys = [in_flight_key(bot_id), waiting_key(bot_id)]
    return bool(await client.register_script(_START_LUA)(keys=keys, args=args))


async def replies_settled(client: aioredis.Redis, bot_id: object, send_keys: list[str]) -> None:
    """These answers left the pipeline (sent, failed or dropped): the chats waiting for their places
    are handled again."""
    if not send_keys:
        return
    keys = [in_flight_key(bot_id), waiting_key(bot_id)]
    woken = await client.register_script(_SETTLED_LUA)(keys=keys, args=send_keys)
    if woken:
        tasks = [
            PendingTask(
                TASKS.telegram_handle_updates,
                (str(bot_id), chat.decode() if isinstance(chat, bytes) else chat),
            )
            for chat in woken
        ]
        await send_now(tasks)
