"""Dependencies shared by the routers: the unit of work (session), the current user, pagination."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api.cookies import ACCESS_COOKIE, check_csrf
from core import revocation
from core.events import EventBus
from core.logging import user_id_var
from core.redis import async_redis
from core.security import AccessClaims, TokenError, decode_access_token
from core.unit_of_work import DispatchFailed, unit_of_work
from models import Role, User
from services.accounts import auth
from services.errors import Forbidden, Unauthorized, Unavailable

log = logging.getLogger("chatai.api")
_bearer = HTTPBearer(auto_error=False)
_access_cookie = APIKeyCookie(name=ACCESS_COOKIE, auto_error=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed before the response is sent, then its tasks are sent.

    If the tasks cannot be sent, the unit of work is undone and the request answers 503, so a
    client never holds ids of work that will not happen."""
    try:
        async with unit_of_work() as session:
            yield session
    except DispatchFailed as exc:
        raise Unavailable("The task queue is unavailable; the request did nothing") from exc


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def user_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie_token: Annotated[str | None, Depends(_access_cookie)],
) -> AccessClaims:
    """A user's verified, unrevoked access token, checked without the database."""
    if credentials is not None:
        token = credentials.credentials
    elif cookie_token:
        # Browser session: the cookie comes with every request, so a state change needs the CSRF echo.
        check_csrf(request)
        token = cookie_token
    else:
        raise Unauthorized("Authentication required")
    try:
        claims = decode_access_token(token)
    except TokenError as exc:
        raise Unauthorized(exc.message, code=exc.code) from exc
    if claims.kind != "user":
        raise Unauthorized("This token cannot be used here")
    if await revocation.is_revoked(claims):
        raise Unauthorized("The access token has been revoked")
    user_id_var.set(str(claims.subject))
    request.state.access_claims = claims
    return claims


UserClaims = Annotated[AccessClaims, Depends(user_claims)]


async def current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie_token: Annotated[str | None, Depends(_access_cookie)],
) -> User:
    claims = await user_claims(request, credentials, cookie_token)
    return await auth.active_user(session, claims.subject)


CurrentUser = Annotated[User, Depends(current_user)]


async def require_admin(user: CurrentUser) -> User:
    if user.role != Role.admin:
        raise Forbidden("This needs the admin role")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


async def get_bus() -> EventBus:
    return EventBus(async_client=async_redis())


BusDep = Annotated[EventBus, Depends(get_bus)]


class PageParams:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
    ):
        self.limit = limit
        self.cursor = cursor


PageDep = Annotated[PageParams, Depends()]


def request_id(request: Request) -> str | None:
    return request.headers.get("x-request-id")
