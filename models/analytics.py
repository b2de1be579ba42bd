"""Usage rollups: one row per assistant and UTC period (hour or day), recomputed from the raw rows."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class UsageRollup(Base):
    """Messages, dialogs, end users, tokens, cost, reply latency and failures of one assistant in one period.

    The owner is copied from the assistant so a tenant's series is one index range scan.
    """

    __tablename__ = "usage_rollups"
    __table_args__ = (Index("ix_usage_rollups_owner_period", "owner_id", "granularity", "period_start"),)

    granularity: Mapped[str] = mapped_column(String(8), primary_key=True)  # hour | day
    assistant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assistants.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    messages: Mapped[int] = mapped_column(default=0)
    replies: Mapped[int] = mapped_column(default=0)
    failed_replies: Mapped[int] = mapped_column(default=0)
    dialogs: Mapped[int] = mapped_column(default=0)
    end_users: Mapped[int] = mapped_column(default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_p50_ms: Mapped[float | None]
    latency_p95_ms: Mapped[float | None]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
