"""Access-token revocation that costs one Redis round trip per request.

Up to three keys per check, read with one MGET: the token's own ``jti`` (set at logout, kept for the
token's remaining lifetime), the user's "not before" time (set at deactivation or a role change: every
token issued earlier is refused), and the token's login family (set when that login ends: logout, or a
refresh token used twice). The last two are kept for one access-token lifetime, after which the tokens
they refuse have expired anyway.
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
REVOKED_FAMILY_PREFIX = "chatai:revoked-family:"
FAMILY_CLAIM = "fam"  # the login (refresh-token family) an access token was issued from


async def is_revoked(claims: AccessClaims) -> bool:
    """Whether the token was revoked. While Redis is unreachable the check is skipped (logged): reads
    from Postgres keep working through a Redis outage, tokens expire within minutes, and a deactivated
    account is still refused by its database row."""
    keys = [REVOKED_PREFIX + claims.jti, NOT_BEFORE_PREFIX + str(claims.subject)]
    family = claims.scope.get(FAMILY_CLAIM)
    if isinstance(family, str):
        keys.append(REVOKED_FAMILY_PREFIX + family)
    try:
        revoked, not_before, *family_revoked = await async_redis().mget(keys)
    except (redis.ConnectionError, redis.TimeoutError):
        log.warning("revocation check skipped: Redis is unavailable")
        return False
    return (
        revoked is not None
        or (not_before is not None and claims.issued_at < float(not_before))
        or any(value is not None for value in family_revoked)
    )


async def revoke_token(claims: AccessClaims) -> None:
    remaining = max(1, int(claims.expires_at - time.time()) + 1)
    await async_redis().set(REVOKED_PREFIX + claims.jti, 1, ex=remaining)


async def revoke_all(user_id: uuid.UUID) -> None:
    """Refuse every access token of this user issued until now."""
    # Rounded up to the millisecond of "iat": a token issued in this very millisecond is refused too.
    not_before = math.ceil(time.time() * 1000) / 1000
    await async_redis().set(NOT_BEFORE_PREFIX + str(user_id), f"{not_before:.3f}", ex=_lifetime())


async def revoke_family(family_id: uuid.UUID) -> None:
    """Refuse every access token issued from this login (no new ones come: its refresh tokens are dead)."""
    await async_redis().set(REVOKED_FAMILY_PREFIX + str(family_id), 1, ex=_lifetime())


def _lifetime() -> int:
    return get_settings().access_token_ttl_seconds + 60
