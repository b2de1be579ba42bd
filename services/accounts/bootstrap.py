"""The first admin of a platform, made from the command line (no admin exists yet to use the API)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.security import hash_password
from models import Role, User
from services.accounts import audit, auth, passwords

ADMIN_CREATED = "admin_created"


@dataclass(frozen=True)
class AdminResult:
    user: User
    created: bool


async def create_admin(session: AsyncSession, email: str, password: str) -> AdminResult:
    """Register ``email`` as an admin, or make the existing account an admin with this password."""
    passwords.check_new_password(password, email)
    user = await session.scalar(select(User).where(User.email == auth.normalize_email(email)))
    created = user is None
    if user is None:
        user = await auth.register(session, email, password, name=None)
    else:
        user.password_hash = hash_password(password)
        user.is_active = True
    user.role = Role.admin
    audit.record(session, ADMIN_CREATED, subject=str(user.id), details={"via": "cli", "created": created})
    await session.flush()
    return AdminResult(user=user, created=created)
