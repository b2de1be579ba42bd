from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status

from api.cookies import REFRESH_COOKIE, check_csrf, clear_session_cookies, set_session_cookies
from api.deps import CurrentUser, SessionDep
from api.ratelimits import client_ip, enforce, login_per_ip, register_per_ip
from api.schemas import LoginIn, LogoutIn, RefreshIn, RegisterIn, TokenOut, UserOut
from core import revocation
from core.settings import get_settings
from services.accounts import auth
from services.errors import Unauthorized

router = APIRouter(prefix="/api", tags=["auth"])


@router.post(
    "/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    dependencies=[Depends(register_per_ip)],
)
async def register(body: RegisterIn, session: SessionDep) -> UserOut:
    await enforce(
        get_settings().rate_limit_register_per_email, "register-email", auth.normalize_email(body.email)
    )
    user = await auth.register(session, body.email, body.password, body.name)
    return UserOut.model_validate(user)


@router.post("/auth/login", response_model=TokenOut, dependencies=[Depends(login_per_ip)])
async def login(body: LoginIn, request: Request, response: Response, session: SessionDep) -> TokenOut:
    # Per email and address: a limit per email alone would let anyone lock its owner out.
    email = auth.normalize_email(body.email)
    await enforce(get_settings().rate_limit_login_per_email, "login-email", email, client_ip(request))
    user = await auth.authenticate(session, body.email, body.password, client_ip(request))
    pair = await auth.issue_tokens(session, user)
    set_session_cookies(response, pair.access_token, pair.refresh_token)
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/auth/refresh", response_model=TokenOut)
async def refresh(
    request: Request, response: Response, session: SessionDep, body: RefreshIn | None = None
) -> TokenOut:
    token = body.refresh_token if body else request.cookies.get(REFRESH_COOKIE)
    if token is None:
        raise Unauthorized("A refresh token is required")
    if body is None:
        check_csrf(request)
    pair = await auth.rotate_refresh_token(session, token)
    set_session_cookies(response, pair.access_token, pair.refresh_token)
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    user: CurrentUser, request: Request, session: SessionDep, body: LogoutIn | None = None
) -> Response:
    refresh_token = body.refresh_token if body else request.cookies.get(REFRESH_COOKIE)
    await auth.logout(session, user, refresh_token)
    # The access token in hand stops working now, not when it expires.
    await revocation.revoke_token(request.state.access_claims)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response)
    return response


@router.get("/users/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
