"""Reconciliation: recompute every balance from its entries and report the ones that differ.

A mismatch is logged, counted and stored for admins (``balance_mismatches``); it is never fixed here —
fixing money is an explicit ``adjustment`` entry by a person.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import BalanceMismatch
from services.billing import queries

log = logging.getLogger("chatai.billing.reconcile")

MISMATCHES = Counter(
    "chatai_billing_balance_mismatches_total", "Balances found different from the sum of their ledger entries"
)


# One statement, so balances and entries are read from one snapshot.
@dataclass(frozen=True)
class ReconcileResult:
    run_id: uuid.UUID
    mismatches: list[BalanceMismatch]


async def reconcile(session: AsyncSession) -> ReconcileResult:
    run_id = uuid.uuid4()
    found: list[BalanceMismatch] = []
    for owner_id, balance, held, ledger_balance, ledger_held in await queries.balance_mismatches(session):
        mismatch = BalanceMismatch(
            run_id=run_id,
            owner_id=owner_id,
            balance_micros=balance,
            ledger_balance_micros=ledger_balance,
            held_micros=held,
            ledger_held_micros=ledger_held,
        )
        session.add(mismatch)
        found.append(mismatch)
        log.error(
            "balance mismatch for user %s: balance %d vs ledger %d, held %d vs ledger %d",
            owner_id, balance, ledger_balance, held, ledger_held,
        )  # fmt: skip
    if found:
        MISMATCHES.inc(len(found))
        await session.flush()
    log.info("reconciliation %s: %d mismatches", run_id, len(found))
    return ReconcileResult(run_id, found)


async def recent_mismatches(session: AsyncSession, limit: int = 100) -> Sequence[BalanceMismatch]:
    query = select(BalanceMismatch).order_by(BalanceMismatch.found_at.desc()).limit(limit)
    return (await session.scalars(query)).all()
