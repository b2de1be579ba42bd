"""Admin endpoints of accounts: change a user's role or activation, read the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field

from api.deps import AdminUser, BusDep, PageDep, SessionDep
from api.ratelimits import client_ip
from api.schemas import Omittable, Out, PageOut, Strict, UserOut
from models import Role
from services.accounts import admin as users_admin

router = APIRouter(prefix="/api/admin", tags=["admin"])


class UserPatch(Strict):
    role: Omittable[Literal["user", "operator", "admin"]] = None
    is_active: Omittable[bool] = None


class AdminUserOut(UserOut):
    is_active: bool


class AuditEventOut(Out):
    id: uuid.UUID
    actor_id: uuid.UUID | None
    action: str
    subject: str | None
    ip: str | None
    details: dict[str, Any] | None = Field(default=None)
    created_at: datetime


@router.get("/users", response_model=PageOut[AdminUserOut])
async def list_users(
    _: AdminUser,
    session: SessionDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=200, description="part of the email or name")] = None,
    role: Literal["user", "operator", "admin"] | None = None,
) -> PageOut[AdminUserOut]:
    result = await users_admin.list_users(session, page.limit, page.cursor, q, Role(role) if role else None)
    return PageOut(
        items=[AdminUserOut.model_validate(u) for u in result.items], next_cursor=result.next_cursor
    )


@router.patch("/users/{user_id}", response_model=AdminUserOut)
async def update_user(
    user_id: uuid.UUID, body: UserPatch, request: Request, admin: AdminUser, session: SessionDep, bus: BusDep
) -> AdminUserOut:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    user = await users_admin.update_user(session, admin, user_id, changes, client_ip(request), bus)
    return AdminUserOut.model_validate(user)


@router.get("/audit", response_model=PageOut[AuditEventOut])
async def list_audit(_: AdminUser, session: SessionDep, page: PageDep) -> PageOut[AuditEventOut]:
    result = await users_admin.list_audit(session, page.limit, page.cursor)
    return PageOut(
        items=[AuditEventOut.model_validate(e) for e in result.items], next_cursor=result.next_cursor
    )
