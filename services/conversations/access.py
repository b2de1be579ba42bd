"""Who may see what: the checks shared by REST handlers and the WebSocket gateway."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.events import dialog_topic, user_topic
from core.security import AccessClaims
from models import Dialog, Role, User
from services.conversations import dialogs


async def resolve_topic(session: AsyncSession, claims: AccessClaims, topic: str) -> str | None:
    """The internal topic for a client's ``topic`` if the caller may see it, else ``None``.

    ``user`` is the caller's own topic; ``dialog:<id>`` needs the dialog to be theirs (admins see all,
    operators the dialogs of their assigned assistants, a widget session only its own dialog).
    """
    if topic == "user":
        return user_topic(claims.subject) if claims.kind == "user" else None
    if not topic.startswith("dialog:"):
        return None
    try:
        dialog_id = uuid.UUID(topic.removeprefix("dialog:"))
    except ValueError:
        return None
    if claims.kind == "widget":
        return dialog_topic(dialog_id) if claims.scope.get("dialog_id") == str(dialog_id) else None
    owner_id = await session.scalar(select(Dialog.owner_id).where(Dialog.id == dialog_id))
    if owner_id is None:
        return None
    if owner_id == claims.subject:
        return dialog_topic(dialog_id)
    user = await session.scalar(select(User).where(User.id == claims.subject, User.is_active))
    if user is None or user.role == Role.user:
        return None
    # Admins see every dialog; operators those of the assistants they are assigned to.
    condition = dialogs.readable_by(user)
    query = select(Dialog.id).where(Dialog.id == dialog_id)
    visible = await session.scalar(query if condition is None else query.where(condition))
    return dialog_topic(dialog_id) if visible is not None else None
