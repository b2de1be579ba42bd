"""Failed-login counting and lockout per email, in Redis (shared by every API process).

Counted per email whether or not an account has it, so a lock does not tell which emails exist.
"""

from __future__ import annotations

from core.redis import async_redis
from core.settings import get_settings

FAILURES_PREFIX = "chatai:login-failures:"
LOCK_PREFIX = "chatai:login-lock:"


async def locked_for(email: str) -> int:
    """Seconds the email stays locked (0: not locked)."""
    ttl = await async_redis().ttl(LOCK_PREFIX + email)
    return max(ttl, 0)


async def register_failure(email: str) -> bool:
    """Count one failed login; True when this failure locks the email."""
    settings = get_settings()
    key = FAILURES_PREFIX + email
    async with async_redis().pipeline(transaction=True) as pipe:
        pipe.incr(key)
        # The count forgets failures older than a lockout period since the first of them.
        pipe.expire(key, settings.login_lockout_seconds, nx=True)
        failures, _ = await pipe.execute()
    if failures < settings.login_max_failures:
        return False
    async with async_redis().pipeline(transaction=True) as pipe:
        pipe.set(LOCK_PREFIX + email, 1, ex=settings.login_lockout_seconds)
        pipe.delete(key)
        await pipe.execute()
    return True


async def clear_failures(email: str) -> None:
    await async_redis().delete(FAILURES_PREFIX + email)
