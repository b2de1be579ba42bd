"""Billing: model prices, the append-only ledger, per-user balances, token usage, payments, and the
findings of reconciliation.

Money is integer micro-units of the platform currency. ``balances`` holds two running sums that always
equal their ledger entries: ``balance_micros`` (``topup``, ``charge``, ``refund``, ``adjustment``) and
``held_micros`` (open holds: ``hold`` entries minus ``release`` entries). The available balance is
``balance_micros - held_micros``; the checks keep it from going below zero.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Enum, ForeignKey, Identity, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin, utcnow

# The price of an embedding model configured without a row of its own. Never a chat model's price: an
# assistant may only use a chat model with its own row.
DEFAULT_PRICE_MODEL = "*"


class PriceKind(enum.StrEnum):
    chat = "chat"  # an assistant may use it
    embedding = "embedding"  # indexing and search use it; never an assistant's model


class TransactionKind(enum.StrEnum):
    topup = "topup"
    hold = "hold"
    charge = "charge"
    release = "release"
    refund = "refund"
    adjustment = "adjustment"


# Entries that move the balance; the others (hold, release) move the held amount.
BALANCE_KINDS = (
    TransactionKind.topup,
    TransactionKind.charge,
    TransactionKind.refund,
    TransactionKind.adjustment,
)
HOLD_KINDS = (TransactionKind.hold, TransactionKind.release)


class Price(Base):
    __tablename__ = "prices"
    __table_args__ = (CheckConstraint("kind IN ('chat', 'embedding')", name="known_kind"),)

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=PriceKind.chat, server_default=PriceKind.chat.value)
    input_micros_per_mtok: Mapped[int] = mapped_column(BigInteger)
    output_micros_per_mtok: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Balance(Base):
    __tablename__ = "balances"
    __table_args__ = (
        CheckConstraint("held_micros >= 0", name="held_not_negative"),
        CheckConstraint("balance_micros >= held_micros", name="available_not_negative"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    balance_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    held_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Transaction(IdMixin, TimestampMixin, Base):
    """One ledger entry. Never updated or deleted; ``idempotency_key`` makes every booking happen once."""

    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_owner_seq", "owner_id", "seq"),
        Index("ix_transactions_open_holds", "created_at", postgresql_where=text("kind = 'hold'")),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[TransactionKind] = mapped_column(Enum(TransactionKind, name="transaction_kind"))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    balance_after_micros: Mapped[int] = mapped_column(BigInteger)
    held_after_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    reference: Mapped[str | None] = mapped_column(String(300))
    reason: Mapped[str | None] = mapped_column(Text)


class UsageRecord(IdMixin, TimestampMixin, Base):
    """Tokens used by one reply or one embedded document, and what they cost: the source for analytics."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_owner_created", "owner_id", "created_at"),)

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # reply | embedding
    subject_id: Mapped[uuid.UUID] = mapped_column(unique=True)  # the reply or document
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))


class CheckoutSession(TimestampMixin, Base):
    """A Stripe Checkout session this platform created; its completion is credited once."""

    __tablename__ = "checkout_sessions"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | completed
    completed_at: Mapped[datetime | None]


class BalanceMismatch(IdMixin, Base):
    """A balance that differed from the sum of its entries when reconciliation ran. Never auto-fixed."""

    __tablename__ = "balance_mismatches"
    __table_args__ = (Index("ix_balance_mismatches_found_at", "found_at"),)

    run_id: Mapped[uuid.UUID]
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    balance_micros: Mapped[int] = mapped_column(BigInteger)
    ledger_balance_micros: Mapped[int] = mapped_column(BigInteger)
    held_micros: Mapped[int] = mapped_column(BigInteger)
    ledger_held_micros: Mapped[int] = mapped_column(BigInteger)
    found_at: Mapped[datetime] = mapped_column(default=utcnow)
