"""Rate limits of the API as dependencies and helpers; counts live in Redis, shared by every process."""

from __future__ import annotations

from fastapi import Request

from api.callers import DialogCaller
from api.deps import CurrentUser, UserClaims
from core import ratelimit
from core.settings import get_settings
from services.errors import RateLimited


def client_ip(request: Request) -> str:
    # Behind a proxy, uvicorn's --proxy-headers (with --forwarded-allow-ips) puts the client here.
    return request.client.host if request.client else "unknown"


async def enforce(limit: str, namespace: str, *identifiers: str) -> None:
    retry_after = await ratelimit.hit(limit, namespace, *identifiers)
    if retry_after is not None:
        raise RateLimited(f"Too many requests; retry in {int(retry_after)} s", retry_after)


async def login_per_ip(request: Request) -> None:
    await enforce(get_settings().rate_limit_login_per_ip, "login-ip", client_ip(request))


async def register_per_ip(request: Request) -> None:
    await enforce(get_settings().rate_limit_register_per_ip, "register-ip", client_ip(request))


async def messages_per_user(caller: DialogCaller) -> None:
    # A widget visitor has a budget of their own, apart from the owner's.
    await enforce(get_settings().rate_limit_messages_per_user, "messages", caller.rate_key)


async def uploads_per_user(user: CurrentUser) -> None:
    await enforce(get_settings().rate_limit_uploads_per_user, "uploads", str(user.id))


async def searches_per_user(claims: UserClaims) -> None:
    # From the token alone: a refused search costs no database connection and no embedding.
    await enforce(get_settings().rate_limit_searches_per_user, "searches", str(claims.subject))
