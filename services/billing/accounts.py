"""Top-ups, adjustments and refunds of an account: the signup credit, the admin's manual top-up, and
the admin's refund of a charge."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
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


async def refund_charge(
    session: AsyncSession,
    charge_id: uuid.UUID,
    amount_micros: int | None,
    reason: str,
    idempotency_key: str,
) -> Transaction:
    """Give back (part of) a charge; refunds of one charge never add up to more than it.

    ``amount_micros`` None refunds what is left. The same key returns the same refund.
    """
    charge = await session.get(Transaction, charge_id)
    if charge is None:
        raise NotFound("Transaction not found")
    if charge.kind != TransactionKind.charge:
        raise Conflict("Only a charge can be refunded")
    key = f"refund:{charge.id}:{idempotency_key}"
    # Under the owner's lock, so concurrent refunds of one charge see each other.
    await ledger.lock_balance(session, charge.owner_id)
    earlier = await ledger.find(session, key)
    if earlier is not None:
        if (amount_micros is not None and earlier.amount_micros != amount_micros) or earlier.reason != reason:
            raise Conflict("This idempotency_key was used for a different refund")
        return earlier
    refunded = await session.scalar(
        select(func.coalesce(func.sum(Transaction.amount_micros), 0)).where(
            Transaction.kind == TransactionKind.refund, Transaction.reference == str(charge.id)
        )
    )
    left = -charge.amount_micros - int(refunded or 0)
    amount = left if amount_micros is None else amount_micros
    if amount <= 0 or amount > left:
        raise Conflict(
            "The refund is more than what is left of the charge", details={"refundable_micros": left}
        )
    entry = Entry(TransactionKind.refund, amount, key, reference=str(charge.id), reason=reason)
    return (await ledger.book(session, charge.owner_id, [entry])).transactions[0]
