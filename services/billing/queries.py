"""Billing's hand-written SQL: the sweeps for holds whose settlement was lost, and reconciliation.
Enum values and key prefixes go in as parameters. Each statement is tested directly in
tests/integration/test_billing_queries.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from models import TERMINAL_STATUSES, TransactionKind

# Reply holds with no release whose reply ended (or is gone), oldest first.
_STALE_REPLY_HOLDS = text(
    """
    SELECT h.reference FROM transactions h
    LEFT JOIN messages m ON m.id = CAST(h.reference AS uuid)
    WHERE h.kind = CAST(:hold AS transaction_kind) AND h.created_at BETWEEN :oldest AND :newest
      AND h.idempotency_key LIKE :hold_prefix || '%'
      AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.idempotency_key = :release_prefix || h.reference)
      AND (m.id IS NULL OR m.status = ANY(CAST(:terminal AS reply_status[])))
    ORDER BY h.created_at
    LIMIT :limit
    """
)

# Indexing holds with no release (whether their document ended is for the settlement to tell).
_STALE_INDEXING_HOLDS = text(
    """
    SELECT h.idempotency_key FROM transactions h
    WHERE h.kind = CAST(:hold AS transaction_kind) AND h.idempotency_key LIKE :hold_prefix || '%'
      AND h.created_at BETWEEN :oldest AND :newest
      AND NOT EXISTS (
          SELECT 1 FROM transactions r
          WHERE r.idempotency_key = :release_prefix || substr(h.idempotency_key, length(:hold_prefix) + 1)
      )
    ORDER BY h.created_at
    LIMIT :limit
    """
)

# Balances whose row disagrees with the sum of their ledger entries (money apart from what is held).
_BALANCE_MISMATCHES = text(
    """
    SELECT b.user_id, b.balance_micros, b.held_micros, s.money, s.held
    FROM balances b
    CROSS JOIN LATERAL (
        SELECT COALESCE(SUM(t.amount_micros) FILTER (WHERE NOT t.holding), 0) AS money,
               COALESCE(SUM(t.amount_micros) FILTER (WHERE t.holding), 0) AS held
        FROM (
            SELECT amount_micros, kind = ANY(CAST(:holding AS transaction_kind[])) AS holding
            FROM transactions WHERE owner_id = b.user_id
        ) t
    ) s
    WHERE b.balance_micros <> s.money OR b.held_micros <> s.held
    """
)

_HOLDING = [TransactionKind.hold.value, TransactionKind.release.value]


async def stale_reply_holds(
    session: AsyncSession,
    oldest: datetime,
    newest: datetime,
    limit: int,
    hold_prefix: str,
    release_prefix: str,
) -> list[str]:
    """References (reply ids) of open reply holds placed between ``oldest`` and ``newest``."""
    params = {
        "hold": TransactionKind.hold.value, "terminal": [s.value for s in TERMINAL_STATUSES],
        "oldest": oldest, "newest": newest, "limit": limit,
        "hold_prefix": hold_prefix, "release_prefix": release_prefix,
    }  # fmt: skip
    return [reference for (reference,) in await session.execute(_STALE_REPLY_HOLDS, params)]


async def stale_indexing_holds(
    session: AsyncSession,
    oldest: datetime,
    newest: datetime,
    limit: int,
    hold_prefix: str,
    release_prefix: str,
) -> list[str]:
    """Idempotency keys of open indexing holds placed between ``oldest`` and ``newest``."""
    params = {
        "hold": TransactionKind.hold.value, "oldest": oldest, "newest": newest, "limit": limit,
        "hold_prefix": hold_prefix, "release_prefix": release_prefix,
    }  # fmt: skip
    return [key for (key,) in await session.execute(_STALE_INDEXING_HOLDS, params)]


async def balance_mismatches(
    session: AsyncSession,
) -> Sequence[Row[uuid.UUID, int, int, int, int]]:
    """(owner, balance, held, ledger balance, ledger held) of every balance that disagrees."""
    return (await session.execute(_BALANCE_MISMATCHES, {"holding": _HOLDING})).all()
