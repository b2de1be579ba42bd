"""Access-token revocation that costs one Redis round trip per request.

Up to three keys per check, read with one MGET: the token's own ``jti`` (set at logout, kept for the
token's remaining lifetime), the user's "not before" time (set at deactivation or a role change: every
token issued earlier is refused), and the token's login family (set when that login ends: logout, or a
refresh token used twice). The last two are kept for one access-token lifetime, after which the tokens
they refuse have expired anyway.

Each revocation is also announced on one Redis channel, which every API process's WebSocket hub
subscribes to: open sockets are authorised when they connect, so the hub closes those the announcement
names (by the session keys below) instead of waiting for their tokens to expire.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
import redis
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.redis import async_redis
from core.security import AccessClaims
from core.settings import get_settings

log = logging.getLogger("chatai.security")

REVOKED_PREFIX = "chatai:revoked-jti:"
NOT_BEFORE_PREFIX = "chatai:tokens-not-before:"
REVOKED_FAMILY_PREFIX = "chatai:revoked-family:"
FAMILY_CLAIM = "fam"  # the login (refresh-token family) an access token was issued from
CHANNEL = "chatai:session-revocations"

# Why a socket is closed, the first word of its close reason: its token no longer holds ("revoked"),
# or the account may see less than before ("access_changed": reconnecting and subscribing again works
# for the topics it may still see).
REVOKED = "revoked"
ACCESS_CHANGED = "access_changed"
WIDGET_SESSION_ENDED = "the widget session has ended"


def user_session(user_id: object) -> str:
    return f"user:{user_id}"


def widget_owner_session(owner_id: object) -> str:
    """Every widget session chatting on ``owner_id``'s behalf."""
    return f"widget-owner:{owner_id}"


def widget_assistant_session(assistant_id: object) -> str:
    return f"widget-assistant:{assistant_id}"


def sessions_of(claims: AccessClaims, owner_id: uuid.UUID | None = None) -> list[str]:
    """The keys a socket authorised by ``claims`` is closed by (``owner_id``: a widget session's owner)."""
    keys = [f"jti:{claims.jti}"]
    if claims.kind == "user":
        keys.append(user_session(claims.subject))
    if isinstance(family := claims.scope.get(FAMILY_CLAIM), str):
        keys.append(f"family:{family}")
    if owner_id is not None:
        keys.append(widget_owner_session(owner_id))
    if isinstance(assistant_id := claims.scope.get("assistant_id"), str):
        keys.append(widget_assistant_session(assistant_id))
    return keys


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
    await announce([f"jti:{claims.jti}"], REVOKED, "the token was revoked")


async def revoke_all(user_id: uuid.UUID) -> None:
    """Refuse every access token of this user issued until now."""
    # Rounded up to the millisecond of "iat": a token issued in this very millisecond is refused too.
    not_before = math.ceil(time.time() * 1000) / 1000
    await async_redis().set(NOT_BEFORE_PREFIX + str(user_id), f"{not_before:.3f}", ex=_lifetime())
    await announce([user_session(user_id)], REVOKED, "the account changed; log in again", not_before)


async def revoke_family(family_id: uuid.UUID) -> None:
    """Refuse every access token issued from this login (no new ones come: its refresh tokens are dead)."""
    await async_redis().set(REVOKED_FAMILY_PREFIX + str(family_id), 1, ex=_lifetime())
    await announce([f"family:{family_id}"], REVOKED, "the login has ended")


async def announce(
    sessions: Iterable[str], reason: str, message: str, issued_before: float | None = None
) -> None:
    """Close the open sockets of these sessions in every API process (only those whose token was issued
    before ``issued_before``, when given). Lost while Redis is unreachable (logged): the revocation keys
    still refuse the tokens, and the gateway re-checks them on every subscribe."""
    notice: dict[str, Any] = {"sessions": list(sessions), "reason": f"{reason}: {message}"}
    if issued_before is not None:
        notice["issued_before"] = issued_before
    try:
        await async_redis().publish(CHANNEL, orjson.dumps(notice))
    except (redis.ConnectionError, redis.TimeoutError):
        log.warning("revocation not announced: Redis is unavailable", extra={"sessions": notice["sessions"]})


def _lifetime() -> int:
    return get_settings().access_token_ttl_seconds + 60


def announce_after_commit(session: AsyncSession, sessions: list[str], reason: str, message: str) -> None:
    """``announce`` once the unit of work has committed, so a socket that reconnects at once already
    finds the change."""
    outbox.after_commit(session, lambda: announce(sessions, reason, message))
