"""Redis clients. One pool per process and kind; blocking pools wait for a free connection instead
of failing when concurrency exceeds the pool size."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio as aioredis

from core.loop_local import LoopLocal
from core.settings import get_settings


@lru_cache
def sync_redis() -> redis.Redis:
    settings = get_settings()
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections, timeout=10
    )
    return redis.Redis(connection_pool=pool)


def _new_async_client() -> aioredis.Redis:
    settings = get_settings()
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections, timeout=10
    )
    return aioredis.Redis(connection_pool=pool)


# A pool is bound to the loop that made it.
_async_clients = LoopLocal(_new_async_client)


def async_redis() -> aioredis.Redis:
    """The async client of the running event loop."""
    return _async_clients.get()


def reset_clients() -> None:
    sync_redis.cache_clear()
    _async_clients.clear()
