"""Redis clients. One pool per process and kind; blocking pools wait for a free connection instead
of failing when concurrency exceeds the pool size."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio as aioredis

from core.settings import get_settings


@lru_cache
def sync_redis() -> redis.Redis:
    settings = get_settings()
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections, timeout=10
    )
    return redis.Redis(connection_pool=pool)


_async_clients: dict[int, aioredis.Redis] = {}


def async_redis() -> aioredis.Redis:
    """The async client of the running event loop (a pool is bound to the loop that made it)."""
    import asyncio

    loop_id = id(asyncio.get_running_loop())
    client = _async_clients.get(loop_id)
    if client is None:
        settings = get_settings()
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_max_connections, timeout=10
        )
        client = _async_clients[loop_id] = aioredis.Redis(connection_pool=pool)
    return client


def reset_clients() -> None:
    sync_redis.cache_clear()
    _async_clients.clear()
