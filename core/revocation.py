"""Access-token revocation that costs one Redis round trip per request.

Two keys per check: the token's own ``jti`` (set at logout, kept for the token's remaining lifetime)
and the user's "not before" time (set at deactivation or a role change: every token issued earlier is
refused; kept for one access-token lifetime, after which those tokens have expired anyway).
"""

from __future__ import annotations

import logging
import math
import time
import uuid

import redis

from core.redis import async_redis
from core.security import AccessClaims
from core.settings import get_settings

log = logging.getLogger("chatai.security")

REVOKED_PREFIX = "chatai:revoked-jti:"
NOT_BEFORE_PREFIX = "chatai:tokens-not-before:"


async def is_revoked(claims: AccessClaims) -> bool:
    """Whether the token was revoked. While Redis is unreachable the check is skipped (logged): reads
    from Postgres keep working through a Redis outage, tokens expire within minutes, and a deactivated
    account is still refused by its database row."""
    try:
        revoked, not_before = await async_redis().mget(
            REVOKED_PREFIX + claims.jti, NOT_BEFORE_PREFIX + str(claims.subject)
        )
    except (redis.ConnectionError, redis.TimeoutError):
        log.warning("revocation check skipped: Redis is unavailable")
        return False
    return revoked is not None or (not_before is not None and claims.issued_at < float(not_before))


async def revoke_token(claims: AccessClaims) -> None:
    remaining = max(1, int(claims.expires_at - time.time()) + 1)
    await async_redis().set(REVOKED_PREFIX + claims.jti, 1, ex=remaining)


async def revoke_all(user_id: uuid.UUID) -> None:
    """Refuse every access token of this user issued until now."""
    ttl = get_settings().access_token_ttl_seconds + 60
    # Rounded up to the millisecond of "iat": a token issued in this very millisecond is refused too.
    not_before = math.ceil(time.time() * 1000) / 1000
    await async_redis().set(NOT_BEFORE_PREFIX + str(user_id), f"{not_before:.3f}", ex=ttl)
