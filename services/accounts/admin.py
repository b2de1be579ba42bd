"""Admin changes to accounts: role and activation, each taking effect at once and audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import revocation
from core.events import EventBus
from models import AuditEvent, RefreshToken, Role, User
from services.accounts import audit
from services.errors import NotFound
from services.pagination import Page, newest_first, page_of
from services.telegram import bots

USER_UPDATED = "user_updated"


async def update_user(
    session: AsyncSession,
    admin: User,
    user_id: uuid.UUID,
    changes: dict[str, Any],
    ip: str | None,
    bus: EventBus,
) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    before = {"role": user.role.value, "is_active": user.is_active}
    if "role" in changes:
        user.role = Role(changes["role"])
    if "is_active" in changes:
        user.is_active = changes["is_active"]
    after = {"role": user.role.value, "is_active": user.is_active}
    if before != after:
        # Deactivation and role changes end every session now: refresh tokens here, access tokens in Redis.
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        await revocation.revoke_all(user.id)
        if not user.is_active:
            # The visitors of their widgets chat on their behalf: those sessions end with the account.
            ended = [revocation.widget_owner_session(user.id)]
            revocation.announce_after_commit(
                session, ended, revocation.REVOKED, revocation.WIDGET_SESSION_ENDED
            )
        if before["is_active"] != after["is_active"]:
            # Their Telegram bots answer (and spend) on the account's behalf too.
            change = bots.resume_owned if user.is_active else bots.suspend_owned
            await change(session, user.id, bus)
        audit.record(session, USER_UPDATED, actor_id=admin.id, subject=str(user.id), ip=ip,
                     details={"before": before, "after": after})  # fmt: skip
    await session.flush()
    return user


async def list_users(
    session: AsyncSession, limit: int, cursor: str | None, search: str | None, role: Role | None
) -> Page[User]:
    """Newest accounts first; ``search`` matches part of the email or the name, case-insensitively."""
    query = select(User)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(User.email.ilike(pattern) | User.name.ilike(pattern))
    if role is not None:
        query = query.where(User.role == role)
    query = newest_first(query, User.created_at, User.id, limit, cursor)
    return page_of((await session.scalars(query)).all(), limit)


async def list_audit(session: AsyncSession, limit: int, cursor: str | None) -> Page[AuditEvent]:
    query = newest_first(select(AuditEvent), AuditEvent.created_at, AuditEvent.id, limit, cursor)
    return page_of((await session.scalars(query)).all(), limit)
