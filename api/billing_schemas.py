"""Request and response bodies of the balance, payments and billing-admin endpoints (docs/api.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas import Out, Strict

# Checkout amounts are whole cents: Stripe charges in the currency's minor unit.
MICROS_PER_CENT = 10_000


class BalanceOut(BaseModel):
    balance_micros: int
    currency: str
    # What open holds (replies and uploads in progress) reserve, and what is left to spend.
    held_micros: int
    available_micros: int


class TransactionOut(Out):
    id: uuid.UUID
    kind: str
    amount_micros: int
    balance_after_micros: int
    reference: str | None
    created_at: datetime


class PriceIn(Strict):
    input_micros_per_mtok: int = Field(ge=0, le=10**12)
    output_micros_per_mtok: int = Field(ge=0, le=10**12)
    # A new model is a chat model (assistants may use it) unless this says "embedding"; an existing one
    # keeps its kind unless this is given.
    kind: Literal["chat", "embedding"] | None = None


class PriceOut(Out):
    model: str
    kind: str
    input_micros_per_mtok: int
    output_micros_per_mtok: int
    currency: str


class PricesOut(BaseModel):
    items: list[PriceOut]


class ChatModelOut(Out):
    """A model an assistant may use, with what it costs."""

    model: str
    input_micros_per_mtok: int
    output_micros_per_mtok: int
    currency: str


class ChatModelsOut(BaseModel):
    items: list[ChatModelOut]


# The largest single movement an admin may book: far inside the ledger's 64-bit sums, so no run of
# bookings can overflow them.
MAX_ADMIN_AMOUNT_MICROS = 10**13


class TopupIn(Strict):
    # Negative debits the account (an adjustment).
    amount_micros: int = Field(ge=-MAX_ADMIN_AMOUNT_MICROS, le=MAX_ADMIN_AMOUNT_MICROS)
    reason: str = Field(min_length=1, max_length=500)
    idempotency_key: str = Field(min_length=1, max_length=200)


class RefundIn(Strict):
    # None: what is left of the charge.
    amount_micros: int | None = Field(default=None, ge=1, le=MAX_ADMIN_AMOUNT_MICROS)
    reason: str = Field(min_length=1, max_length=500)
    idempotency_key: str = Field(min_length=1, max_length=200)


class CheckoutIn(Strict):
    amount_micros: int = Field(ge=50 * MICROS_PER_CENT, le=10**11, multiple_of=MICROS_PER_CENT)


class CheckoutOut(BaseModel):
    id: str
    url: str


class WebhookOut(BaseModel):
    received: bool
    outcome: str


class MismatchOut(Out):
    run_id: uuid.UUID
    owner_id: uuid.UUID
    balance_micros: int
    ledger_balance_micros: int
    held_micros: int
    ledger_held_micros: int
    found_at: datetime


class ReconciliationOut(BaseModel):
    items: list[MismatchOut]
