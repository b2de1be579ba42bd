from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status

from api.deps import CurrentUser, SessionDep
from api.ratelimits import client_ip, enforce, login_per_ip, register_per_ip
from api.schemas import LoginIn, LogoutIn, RefreshIn, RegisterIn, TokenOut, UserOut
from core.settings import get_settings
from services import auth

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
async def login(body: LoginIn, request: Request, session: SessionDep) -> TokenOut:
    await enforce(get_settings().rate_limit_login_per_email, "login-email", auth.normalize_email(body.email))
    user = await auth.authenticate(session, body.email, body.password, client_ip(request))
    pair = await auth.issue_tokens(session, user)
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/auth/refresh", response_model=TokenOut)
async def refresh(body: RefreshIn, session: SessionDep) -> TokenOut:
    pair = await auth.rotate_refresh_token(session, body.refresh_token)
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(user: CurrentUser, session: SessionDep, body: LogoutIn | None = None) -> Response:
    await auth.logout(session, user, body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/me", response_model=UserOut)
async def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)
