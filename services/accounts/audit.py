"""The audit log: security events and admin actions, written in the request's unit of work."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models import AuditEvent

LOGIN_FAILED = "login_failed"
LOGIN_LOCKED_OUT = "login_refused_locked"
ACCOUNT_LOCKED = "account_locked"


def record(
    session: AsyncSession,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    subject: str | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(actor_id=actor_id, action=action, subject=subject, ip=ip, details=details)
    session.add(event)
    return event
