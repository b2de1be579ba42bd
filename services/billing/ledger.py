"""The ledger: entries booked with the owner's balance row locked, each exactly once by its key.

Sign conventions: ``topup`` and ``refund`` are positive, ``charge`` negative, ``adjustment`` either way;
they move ``balance_micros``. A ``hold`` is positive and its ``release`` negative; they move
``held_micros``. So both sums of the balance row always equal the sums of their entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.events import EventBus, user_topic
from core.settings import get_settings
from models import BALANCE_KINDS, Balance, Transaction, TransactionKind
from services.errors import InsufficientBalance, NotFound, ServiceError
from services.pagination import Page

ANNOUNCE_KEY = "chatai_balance_announcements"


@dataclass(frozen=True)
class Entry:
    kind: TransactionKind
    amount_micros: int
    idempotency_key: str
    reference: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Booking:
    transactions: list[Transaction]  # one per requested entry, in order (earlier ones if already booked)
    created: bool  # False when every entry had been booked before
    created_keys: frozenset[str] = frozenset()  # the keys booked by this call


async def lock_balance(session: AsyncSession, owner_id: uuid.UUID) -> Balance:
    """The owner's balance row, created at zero if missing, locked until the unit of work ends."""
    await session.execute(
        pg_insert(Balance)
        .values(user_id=owner_id, balance_micros=0, held_micros=0, currency=get_settings().billing_currency)
        .on_conflict_do_nothing(index_elements=[Balance.user_id])
    )
    balance = await session.scalar(
        select(Balance)
        .where(Balance.user_id == owner_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert balance is not None
    return balance


async def book(session: AsyncSession, owner_id: uuid.UUID, entries: Sequence[Entry]) -> Booking:
    """Book the entries not booked yet (by key), moving the balance in the same transaction.

    Raises ``InsufficientBalance`` if they would take the available balance below zero.
    """
    balance = await lock_balance(session, owner_id)
    keys = [entry.idempotency_key for entry in entries]
    # Keys embed the owner's row ids, so checking under the owner's lock is race-free; the unique
    # index is the backstop.
    earlier = {
        t.idempotency_key: t
        for t in await session.scalars(select(Transaction).where(Transaction.idempotency_key.in_(keys)))
    }
    for key, transaction in earlier.items():
        if transaction.owner_id != owner_id:
            raise ServiceError(f"Idempotency key {key!r} belongs to another account", code="conflict")
    new_balance, new_held = balance.balance_micros, balance.held_micros
    planned: list[Transaction] = []
    out: list[Transaction] = []
    for entry in entries:
        if entry.idempotency_key in earlier:
            out.append(earlier[entry.idempotency_key])
            continue
        if entry.kind in BALANCE_KINDS:
            new_balance += entry.amount_micros
        else:
            new_held += entry.amount_micros
        transaction = Transaction(
            owner_id=owner_id,
            kind=entry.kind,
            amount_micros=entry.amount_micros,
            balance_after_micros=new_balance,
            held_after_micros=new_held,
            currency=balance.currency,
            idempotency_key=entry.idempotency_key,
            reference=entry.reference,
            reason=entry.reason,
        )
        planned.append(transaction)
        out.append(transaction)
    # The booking as a whole must leave the held amount and the available balance non-negative (a
    # settlement's charge comes out of its own hold, released in the same booking).
    if new_held < 0 or new_balance < new_held:
        available = balance.balance_micros - balance.held_micros
        raise InsufficientBalance("The balance does not cover this", details={"available_micros": available})
    created = bool(planned)
    session.add_all(planned)
    balance.balance_micros, balance.held_micros = new_balance, new_held
    if created:
        balance.updated_at = datetime.now(UTC)
        await session.flush()
        announce(session, owner_id, balance.balance_micros, balance.held_micros)
    return Booking(out, created, frozenset(t.idempotency_key for t in planned))


def announce(session: AsyncSession, owner_id: uuid.UUID, balance_micros: int, held_micros: int) -> None:
    """Publish ``balance.changed`` with the final figures once the unit of work has committed."""
    first = ANNOUNCE_KEY not in session.info
    pending: dict[uuid.UUID, dict[str, int]] = session.info.setdefault(ANNOUNCE_KEY, {})
    pending[owner_id] = {
        "balance_micros": balance_micros,
        "held_micros": held_micros,
        "available_micros": balance_micros - held_micros,
    }
    if first:
        outbox.after_commit(session, lambda: _publish(session.info.pop(ANNOUNCE_KEY, {})))


async def _publish(pending: dict[uuid.UUID, dict[str, int]]) -> None:
    from core.redis import async_redis

    bus = EventBus(async_client=async_redis())
    for owner_id, data in pending.items():
        await bus.apublish(user_topic(owner_id), "balance.changed", data)


async def get_balance(session: AsyncSession, owner_id: uuid.UUID) -> Balance:
    balance = await session.get(Balance, owner_id)
    if balance is None:
        return Balance(
            user_id=owner_id, balance_micros=0, held_micros=0, currency=get_settings().billing_currency
        )
    return balance


async def find(session: AsyncSession, idempotency_key: str) -> Transaction | None:
    return await session.scalar(select(Transaction).where(Transaction.idempotency_key == idempotency_key))


BIGINT_MAX = 2**63 - 1


def seq_cursor(cursor: str) -> int:
    """A transactions page's cursor: the last seq shown, a positive bigint (anything else is refused)."""
    if not (cursor.isascii() and cursor.isdigit()) or not 0 < int(cursor) <= BIGINT_MAX:
        raise ServiceError("The cursor is not valid")
    return int(cursor)


async def list_for_owner(
    session: AsyncSession, owner_id: uuid.UUID, limit: int, cursor: str | None
) -> Page[Transaction]:
    """The owner's money movements, newest first. Holds and releases are internal and not listed."""
    query = select(Transaction).where(Transaction.owner_id == owner_id, Transaction.kind.in_(BALANCE_KINDS))
    if cursor:
        query = query.where(Transaction.seq < seq_cursor(cursor))
    rows = (await session.scalars(query.order_by(Transaction.seq.desc()).limit(limit + 1))).all()
    if len(rows) > limit:
        return Page(rows[:limit], str(rows[limit - 1].seq))
    return Page(rows, None)


async def get_for_owner(session: AsyncSession, owner_id: uuid.UUID, transaction_id: uuid.UUID) -> Transaction:
    transaction = await session.scalar(
        select(Transaction).where(
            Transaction.id == transaction_id,
            Transaction.owner_id == owner_id,
            Transaction.kind.in_(BALANCE_KINDS),
        )
    )
    if transaction is None:
        raise NotFound("Transaction not found")
    return transaction
