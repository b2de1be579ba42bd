"""Rate limits shared by every API process: the ``limits`` library's sliding-window counters in Redis.

A limit is written in the library's notation (``"10/minute"``, ``"100 per hour"``) and comes from
settings, so deployments and test runs size them without code changes.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Any, cast

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from core.loop_local import LoopLocal
from core.redis import async_redis
from core.settings import get_settings

KEY_PREFIX = "chatai:rl"


@lru_cache
def limit_item(text: str) -> RateLimitItem:
    return parse(text)


def _new_limiter() -> SlidingWindowCounterRateLimiter:
    storage = RedisStorage(
        "async+" + get_settings().redis_url,
        implementation="redispy",
        key_prefix=KEY_PREFIX,
        # Passed on to redis-py's client, though limits types its options as scalars only.
        connection_pool=cast(Any, async_redis().connection_pool),
    )
    return SlidingWindowCounterRateLimiter(storage)


# On the running loop's Redis pool (a pool is bound to its loop).
_limiters = LoopLocal(_new_limiter)


async def hit(limit: str, namespace: str, *identifiers: str) -> float | None:
    """Count one request against ``limit`` for these identifiers; the seconds to wait if it is refused."""
    if not get_settings().rate_limits_enabled:
        return None
    item = limit_item(limit)
    limiter = _limiters.get()
    if await limiter.hit(item, namespace, *identifiers):
        return None
    stats = await limiter.get_window_stats(item, namespace, *identifiers)
    return max(1.0, math.ceil(stats.reset_time - time.time()))


def reset_limiters() -> None:
    _limiters.clear()
