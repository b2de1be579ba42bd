"""Failed logins, counted in Redis (shared by every API process) two ways.

- Per (email, client address): ``login_max_failures`` failures lock that address out of that email
  for ``login_lockout_seconds`` (``423``). Another address, the owner's among them, is not affected.
- Per email, over every address: past ``login_delay_after_failures`` failures each further attempt
  from an address the account has not logged in from must wait a delay that doubles with every
  failure (``429`` with ``Retry-After``), up to ``login_delay_max_seconds``. A delay slows a guesser
  spread over many addresses without refusing the right password for good, and addresses the account
  has logged in from recently skip it, so nobody can lock the owner out by guessing their email.

Both are counted whether or not an account has the email, so neither tells which emails exist.
"""

from __future__ import annotations

import time

from core.redis import async_redis
from core.settings import get_settings

FAILURES_PREFIX = "chatai:login-failures:"
LOCK_PREFIX = "chatai:login-lock:"
EMAIL_FAILURES_PREFIX = "chatai:login-email-failures:"
EMAIL_WAIT_PREFIX = "chatai:login-email-wait:"
KNOWN_PREFIX = "chatai:login-known:"


def _pair(email: str, address: str) -> str:
    return f"{email}|{address}"


async def locked_for(email: str, address: str) -> int:
    """Seconds this address stays locked out of the email (0: not locked)."""
    ttl = await async_redis().ttl(LOCK_PREFIX + _pair(email, address))
    return max(ttl, 0)


async def delay_for(email: str, address: str) -> float:
    """Seconds this address must wait before trying the email again (0: try now)."""
    client = async_redis()
    wait_ms = await client.pttl(EMAIL_WAIT_PREFIX + email)
    if wait_ms <= 0 or await client.sismember(KNOWN_PREFIX + email, address):
        return 0.0
    return wait_ms / 1000


async def register_failure(email: str, address: str) -> bool:
    """Count one failed login both ways; True when it locks this address out of the email."""
    settings = get_settings()
    pair_key = FAILURES_PREFIX + _pair(email, address)
    email_key = EMAIL_FAILURES_PREFIX + email
    async with async_redis().pipeline(transaction=True) as pipe:
        pipe.incr(pair_key)
        # Each count forgets failures older than a lockout period since the first of them.
        pipe.expire(pair_key, settings.login_lockout_seconds, nx=True)
        pipe.incr(email_key)
        pipe.expire(email_key, settings.login_lockout_seconds, nx=True)
        pair_failures, _, email_failures, _ = await pipe.execute()
    over = email_failures - settings.login_delay_after_failures
    if over >= 0:
        delay = min(settings.login_delay_base_seconds * 2**over, settings.login_delay_max_seconds)
        await async_redis().set(EMAIL_WAIT_PREFIX + email, int(time.time()), px=int(delay * 1000))
    if pair_failures < settings.login_max_failures:
        return False
    async with async_redis().pipeline(transaction=True) as pipe:
        pipe.set(LOCK_PREFIX + _pair(email, address), 1, ex=settings.login_lockout_seconds)
        pipe.delete(pair_key)
        await pipe.execute()
    return True


async def succeeded(email: str, address: str) -> None:
    """A right password: this address's count starts again, and it is known to the account from now."""
    settings = get_settings()
    async with async_redis().pipeline(transaction=True) as pipe:
        pipe.delete(FAILURES_PREFIX + _pair(email, address))
        pipe.sadd(KNOWN_PREFIX + email, address)
        pipe.expire(KNOWN_PREFIX + email, settings.login_known_address_days * 86400)
        await pipe.execute()
