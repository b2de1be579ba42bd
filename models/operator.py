"""Operators assigned to assistants: people who read the assistant's dialogs and may step in, and the
invitations they accept to be assigned."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin


class AssistantOperator(TimestampMixin, Base):
    __tablename__ = "assistant_operators"

    assistant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assistants.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed on its own: an operator's dialog list looks up their assistants by operator.
    operator_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class OperatorInvitation(IdMixin, TimestampMixin, Base):
    """An owner's invitation for an operator to one assistant; accepting it assigns them."""

    __tablename__ = "operator_invitations"
    __table_args__ = (UniqueConstraint("assistant_id", "user_id"),)

    assistant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assistants.id", ondelete="CASCADE"))
    # The invited operator; indexed on its own: they list their invitations.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
