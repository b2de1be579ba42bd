"""Holds: reserve a reply's worst-case cost when it is accepted, settle it when the reply ends.

Keys, all on the reply id: ``hold:<id>``, ``charge:<id>``, ``release:<id>``. Settlement books the
charge and the release of the whole hold in one database transaction, so a reply is settled at most
once however often its task is delivered; ``release:<id>`` existing means the hold is closed.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import get_settings
from models import (
    TERMINAL_STATUSES,
    Balance,
    Message,
    Price,
    Transaction,
    TransactionKind,
    UsageRecord,
)
from services.billing import ledger, pricing, queries
from services.billing.ledger import Entry
from services.errors import InsufficientBalance
from services.providers.tokens import estimate_tokens

log = logging.getLogger("chatai.billing")


HOLD_PREFIX, RELEASE_PREFIX = "hold:", "release:"


def hold_key(reply_id: uuid.UUID) -> str:
    return f"{HOLD_PREFIX}{reply_id}"


def charge_key(reply_id: uuid.UUID) -> str:
    return f"charge:{reply_id}"


def release_key(reply_id: uuid.UUID) -> str:
    return f"{RELEASE_PREFIX}{reply_id}"


async def place_hold(
    session: AsyncSession,
    owner_id: uuid.UUID,
    amount: int,
    key: str,
    reference: str,
    what: str = "a new reply",
) -> None:
    """Reserve ``amount`` or raise ``InsufficientBalance``; one conditional UPDATE, no read-modify-write."""
    row = (
        await session.execute(
            update(Balance)
            .where(Balance.user_id == owner_id, Balance.balance_micros - Balance.held_micros >= amount)
            .values(held_micros=Balance.held_micros + amount, updated_at=func.now())
            .returning(Balance.balance_micros, Balance.held_micros, Balance.currency)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        balance = await session.get(Balance, owner_id)
        available = balance.balance_micros - balance.held_micros if balance else 0
        raise InsufficientBalance(
            f"The balance does not cover {what}",
            details={"required_micros": amount, "available_micros": available},
        )
    balance_after, held_after, currency = row
    session.add(
        Transaction(
            owner_id=owner_id,
            kind=TransactionKind.hold,
            amount_micros=amount,
            balance_after_micros=balance_after,
            held_after_micros=held_after,
            currency=currency,
            idempotency_key=key,
            reference=reference,
        )
    )
    await session.flush()
    ledger.announce(session, owner_id, balance_after, held_after)


async def hold_for_reply(
    session: AsyncSession, owner_id: uuid.UUID, reply: Message, system_prompt: str, content: str
) -> int:
    """Place the hold for a reply about to be queued: its worst-case cost with the generation settings
    recorded on it (``system_prompt`` is the text of its recorded prompt version)."""
    assert reply.model is not None and reply.max_tokens is not None
    price = await pricing.chat_price(session, reply.model)
    amount = pricing.hold_micros(price, system_prompt, content, reply.max_tokens)
    await place_hold(session, owner_id, amount, hold_key(reply.id), str(reply.id))
    return amount


@dataclass(frozen=True)
class Settlement:
    reply_id: uuid.UUID
    outcome: str  # settled | already_settled | no_hold | not_finished
    charged_micros: int = 0


def _billable_tokens(reply: Message | None) -> tuple[int, int]:
    """A reply pays the usage its worker recorded: a completed one all of it; a failed or cancelled one its
    prompt once the provider began answering, and the text generated until it ended (a reply refused or
    unreachable from the start has none recorded, and pays nothing)."""
    if reply is None:
        return 0, 0
    completion = reply.completion_tokens
    if completion is None:
        completion = estimate_tokens(reply.content)
    return reply.prompt_tokens or 0, completion


async def settle_reply(session: AsyncSession, reply_id: uuid.UUID) -> Settlement:
    """Turn the reply's hold into its charge and release the hold, exactly once."""
    (settlement,) = await settle_replies(session, [reply_id])
    return settlement


@dataclass(frozen=True)
class _Due:
    reply_id: uuid.UUID
    hold: Transaction
    reply: Message | None
    prompt_tokens: int
    completion_tokens: int
    price: Price
    charge: int


async def settle_replies(session: AsyncSession, reply_ids: Sequence[uuid.UUID]) -> list[Settlement]:
    """Settle many replies in this one transaction: a few statements for all of them, and one booking
    per owner (owners locked in id order, so concurrent batches cannot deadlock). Each reply is settled
    at most once, whichever batch or delivery gets to it first; the result is in ``reply_ids``' order."""
    ids = list(dict.fromkeys(reply_ids))
    if not ids:
        return []
    keys = [hold_key(i) for i in ids] + [release_key(i) for i in ids]
    found = {
        t.idempotency_key: t
        for t in await session.scalars(select(Transaction).where(Transaction.idempotency_key.in_(keys)))
    }
    replies = {m.id: m for m in await session.scalars(select(Message).where(Message.id.in_(ids)))}
    outcome: dict[uuid.UUID, Settlement] = {}
    prices: dict[str | None, Price] = {}
    due: dict[uuid.UUID, list[_Due]] = defaultdict(list)
    for reply_id in ids:
        hold = found.get(hold_key(reply_id))
        reply = replies.get(reply_id)
        if hold is None:
            outcome[reply_id] = Settlement(reply_id, "no_hold")
        elif reply is not None and reply.status not in TERMINAL_STATUSES:
            outcome[reply_id] = Settlement(reply_id, "not_finished")
        elif release_key(reply_id) in found:
            outcome[reply_id] = Settlement(reply_id, "already_settled")
        else:
            prompt_tokens, completion_tokens = _billable_tokens(reply)
            model = reply.model if reply is not None else None
            if model not in prices:
                prices[model] = await pricing.price_for(session, model)
            price = prices[model]
            cost = pricing.cost_micros(price, prompt_tokens, completion_tokens)
            charge = min(cost, hold.amount_micros)
            if charge < cost:
                log.warning(
                    "reply %s cost %d more than its hold %d; charged the hold", reply_id, cost, charge
                )
            due[hold.owner_id].append(
                _Due(reply_id, hold, reply, prompt_tokens, completion_tokens, price, charge)
            )
    usage: list[dict[str, object]] = []
    for owner_id in sorted(due):
        entries: list[Entry] = []
        for item in due[owner_id]:
            rid, reference = item.reply_id, str(item.reply_id)
            if item.charge > 0:
                entries.append(Entry(TransactionKind.charge, -item.charge, charge_key(rid), reference))
            released = -item.hold.amount_micros
            entries.append(Entry(TransactionKind.release, released, release_key(rid), reference))
        booking = await ledger.book(session, owner_id, entries)
        for item in due[owner_id]:
            if release_key(item.reply_id) not in booking.created_keys:
                # A concurrent delivery settled it while this one waited for the owner's lock.
                outcome[item.reply_id] = Settlement(item.reply_id, "already_settled")
                continue
            outcome[item.reply_id] = Settlement(item.reply_id, "settled", item.charge)
            if item.reply is not None:
                item.reply.cost_micros = item.charge
                usage.append(
                    {
                        "owner_id": owner_id, "kind": "reply", "subject_id": item.reply_id,
                        "model": item.reply.model or "", "prompt_tokens": item.prompt_tokens,
                        "completion_tokens": item.completion_tokens, "cost_micros": item.charge,
                        "currency": item.price.currency,
                    }
                )  # fmt: skip
    if usage:
        await session.execute(
            pg_insert(UsageRecord)
            .values(usage)
            .on_conflict_do_nothing(index_elements=[UsageRecord.subject_id])
        )
    await session.flush()
    return [outcome[reply_id] for reply_id in ids]


async def release_hold(session: AsyncSession, reply_id: uuid.UUID) -> bool:
    """Release a hold without charging (the reply was undone); False if there was nothing to release."""
    hold = await ledger.find(session, hold_key(reply_id))
    if hold is None:
        return False
    entry = Entry(TransactionKind.release, -hold.amount_micros, release_key(reply_id), str(reply_id))
    return (await ledger.book(session, hold.owner_id, [entry])).created


async def stale_holds(session: AsyncSession, limit: int = 500) -> list[uuid.UUID]:
    """Replies that ended (or were deleted) while their hold stayed open: a lost settle task."""
    settings = get_settings()
    now = datetime.now(UTC)
    newest = now - timedelta(seconds=settings.billing_hold_sweep_seconds)
    # Replies cannot live longer than their attempts' time limits; older holds were swept long ago.
    oldest = now - timedelta(days=7)
    references = await queries.stale_reply_holds(
        session, oldest, newest, limit, hold_prefix=HOLD_PREFIX, release_prefix=RELEASE_PREFIX
    )
    return [uuid.UUID(reference) for reference in references]
