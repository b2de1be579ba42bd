"""Operators assigned to assistants: people who read the assistant's dialogs and may step in."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, TimestampMixin


class AssistantOperator(TimestampMixin, Base):
    __tablename__ = "assistant_operators"

    assistant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assistants.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed on its own: an operator's dialog list looks up their assistants by operator.
    operator_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
