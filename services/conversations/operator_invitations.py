"""Operator invitations: an owner invites an operator by email; the operator accepts to be assigned.

Nothing about an invitation tells the owner who has an account: an unknown email, a user without the
operator role and an operator all get the same answer, and only an operator's acceptance (which the
owner sees in the assigned list) reveals the person behind an email.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from models import Assistant, AssistantOperator, OperatorInvitation, Role, User
from services import assistants
from services.accounts.auth import normalize_email
from services.errors import NotFound
from services.pagination import Page, newest_first, page_of


@dataclass(frozen=True)
class PendingInvitation:
    id: uuid.UUID
    assistant_id: uuid.UUID
    assistant_name: str
    created_at: datetime


async def invite(session: AsyncSession, owner: User, assistant_id: uuid.UUID, email: str) -> None:
    """Invite the operator with this email to one of ``owner``'s assistants; silently nothing for an
    email of no operator, or of one already assigned or invited."""
    assistant = await assistants.get_owned(session, owner, assistant_id)
    operator_id = await session.scalar(
        select(User.id).where(
            User.email == normalize_email(email), User.is_active, User.role == Role.operator
        )
    )
    if operator_id is None:
        return
    assigned = await session.scalar(
        select(AssistantOperator.operator_id).where(
            AssistantOperator.assistant_id == assistant.id, AssistantOperator.operator_id == operator_id
        )
    )
    if assigned is None:
        await session.execute(
            insert(OperatorInvitation)
            .values(
                id=uuid.uuid4(), assistant_id=assistant.id, user_id=operator_id, created_at=datetime.now(UTC)
            )
            .on_conflict_do_nothing()
        )


async def list_pending(
    session: AsyncSession, user: User, limit: int, cursor: str | None
) -> Page[PendingInvitation]:
    """The invitations waiting for ``user`` (none for users without the operator role)."""
    if user.role != Role.operator:
        return page_of([], limit)
    query = (
        select(OperatorInvitation.id, Assistant.id, Assistant.name, OperatorInvitation.created_at)
        .join(Assistant, Assistant.id == OperatorInvitation.assistant_id)
        .where(OperatorInvitation.user_id == user.id)
    )
    query = newest_first(query, OperatorInvitation.created_at, OperatorInvitation.id, limit, cursor)
    rows = (await session.execute(query)).all()
    return page_of([PendingInvitation(*row) for row in rows], limit)


async def _take(session: AsyncSession, user: User, invitation_id: uuid.UUID) -> uuid.UUID:
    """Remove one of ``user``'s invitations; the assistant it was for."""
    assistant_id: uuid.UUID | None = await session.scalar(
        delete(OperatorInvitation)
        .where(OperatorInvitation.id == invitation_id, OperatorInvitation.user_id == user.id)
        .returning(OperatorInvitation.assistant_id)
    )
    if assistant_id is None:
        raise NotFound("Invitation not found")
    return assistant_id


async def accept(session: AsyncSession, user: User, invitation_id: uuid.UUID) -> None:
    """The invited operator agrees: from now on they are assigned to the assistant."""
    if user.role != Role.operator:  # since invited, their role changed: the invitation lapses
        raise NotFound("Invitation not found")
    assistant_id = await _take(session, user, invitation_id)
    await session.execute(
        insert(AssistantOperator)
        .values(assistant_id=assistant_id, operator_id=user.id, created_at=datetime.now(UTC))
        .on_conflict_do_nothing()
    )


async def decline(session: AsyncSession, user: User, invitation_id: uuid.UUID) -> None:
    await _take(session, user, invitation_id)
