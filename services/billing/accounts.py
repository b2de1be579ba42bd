"""Top-ups and adjustments of an account: the signup credit and the admin's manual top-up."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from models import Transaction, TransactionKind, User
from services.billing import ledger
from services.billing.ledger import Entry
from services.errors import Conflict, NotFound


async def open_account(session: AsyncSession, user_id: uuid.UUID, signup_credit_micros: int) -> None:
    """Create the balance row, crediting the signup credit as a top-up (once per user)."""
    if signup_credit_micros > 0:
        entry = Entry(
            TransactionKind.topup, signup_credit_micros, f"signup:{user_id}", reason="Signup credit"
        )
        await ledger.book(session, user_id, [entry])
    else:
        await ledger.lock_balance(session, user_id)


async def admin_topup(
    session: AsyncSession, user_id: uuid.UUID, amount_micros: int, reason: str, idempotency_key: str
) -> Transaction:
    """Credit (or, negative, debit as an adjustment) the user; the same key returns the same entry."""
    if await session.get(User, user_id) is None:
        raise NotFound("User not found")
    kind = TransactionKind.topup if amount_micros > 0 else TransactionKind.adjustment
    entry = Entry(kind, amount_micros, f"admin-topup:{user_id}:{idempotency_key}", reason=reason)
    booking = await ledger.book(session, user_id, [entry])
    transaction = booking.transactions[0]
    if not booking.created and (transaction.amount_micros != amount_micros or transaction.reason != reason):
        raise Conflict("This idempotency_key was used for a different top-up")
    return transaction
