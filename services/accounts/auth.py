"""Accounts and sessions: registration, login, refresh-token rotation with reuse detection, logout."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import revocation
from core.security import (
    create_access_token,
    hash_password,
    hash_refresh_token,
    new_refresh_token,
    verify_password,
)
from core.settings import get_settings
from models import RefreshToken, User
from services.accounts import audit, lockout, passwords
from services.billing import accounts as billing_accounts
from services.errors import AccountLocked, Conflict, RateLimited, Unauthorized


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class LoginFailed(Unauthorized):
    """Wrong email or password: the request fails, and its audit record must stay."""

    persist = True


class RefreshReused(Unauthorized):
    """A rotated refresh token came back: its family is revoked, and that must stick."""

    persist = True


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def register(session: AsyncSession, email: str, password: str, name: str | None) -> User:
    passwords.check_new_password(password, email)
    user = User(email=normalize_email(email), password_hash=hash_password(password), name=name)
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("An account with this email already exists", code="email_taken") from exc
    await billing_accounts.open_account(session, user.id, get_settings().signup_credit_micros or 0)
    return user


async def authenticate(session: AsyncSession, email: str, password: str, ip: str | None = None) -> User:
    """The user with this email and password; every failure is audited. Too many failures from one
    address lock that address out of the email; many over all addresses slow the email down for
    addresses it has not logged in from (``services.accounts.lockout``).

    An unknown email, a wrong password and an inactive account get the same answer after the same
    work (a password hash is verified in every case), and failures are counted per email whether or
    not an account has it, so neither the answer nor its timing tells which emails exist.
    """
    email = normalize_email(email)
    address = ip or "unknown"
    locked = await lockout.locked_for(email, address)
    if locked:
        audit.record(session, audit.LOGIN_LOCKED_OUT, subject=email, ip=ip)
        raise AccountLocked(
            "Too many failed logins; the account is locked for a while", details={"retry_after": locked}
        )
    delay = await lockout.delay_for(email, address)
    if delay:
        raise RateLimited(
            f"Too many failed logins for this email; retry in {math.ceil(delay)} s", math.ceil(delay)
        )
    user = await session.scalar(select(User).where(User.email == email))
    ok = verify_password(user.password_hash if user else None, password)
    if ok and user is not None and user.is_active:
        await lockout.succeeded(email, address)
        return user
    actor = user.id if user else None
    audit.record(session, audit.LOGIN_FAILED, actor_id=actor, subject=email, ip=ip)
    if await lockout.register_failure(email, address):
        seconds = get_settings().login_lockout_seconds
        audit.record(session, audit.ACCOUNT_LOCKED, actor_id=actor, subject=email, ip=ip,
                     details={"seconds": seconds})  # fmt: skip
        raise AccountLocked(
            "Too many failed logins; the account is locked for a while", details={"retry_after": seconds}
        )
    raise LoginFailed("Wrong email or password")


async def issue_tokens(session: AsyncSession, user: User, family_id: uuid.UUID | None = None) -> TokenPair:
    settings = get_settings()
    family_id = family_id or uuid.uuid4()
    # The access token names its login, so ending the login (logout, reuse) ends the token too.
    login: dict[str, Any] = {revocation.FAMILY_CLAIM: str(family_id)}
    access, ttl = create_access_token(user.id, **login)
    refresh, refresh_hash = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=refresh_hash,
            expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenPair(access, refresh, ttl)


async def rotate_refresh_token(session: AsyncSession, token: str) -> TokenPair:
    now = datetime.now(UTC)
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token)).with_for_update()
    )
    if stored is None:
        raise Unauthorized("The refresh token is not valid")
    if stored.used_at is not None or stored.revoked_at is not None:
        await revoke_family(session, stored.family_id)
        raise RefreshReused("The refresh token was already used; every session of this login is revoked")
    if stored.expires_at <= now:
        raise Unauthorized("The refresh token has expired", code="token_expired")
    user = await session.get(User, stored.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account is not active")
    stored.used_at = now
    return await issue_tokens(session, user, family_id=stored.family_id)


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    """End one login: its refresh tokens here, the access tokens issued from it in Redis."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    await revocation.revoke_family(family_id)


async def logout(session: AsyncSession, user: User, refresh_token: str | None) -> None:
    """Revoke the login the refresh token belongs to (or every login of the user without one)."""
    query = update(RefreshToken).where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
    if refresh_token:
        family = await session.scalar(
            select(RefreshToken.family_id).where(
                RefreshToken.token_hash == hash_refresh_token(refresh_token), RefreshToken.user_id == user.id
            )
        )
        if family is None:
            return
        await revoke_family(session, family)
        return
    await session.execute(query.values(revoked_at=datetime.now(UTC)))


async def active_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account is not active")
    return user
