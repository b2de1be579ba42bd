"""The accept path's hand-written SQL: on the hottest endpoint the ORM's per-statement CPU (compiling,
identity map, unit-of-work flush) cost more than the database work, so a turn costs two statements: one
read of what it needs, one write of everything it changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from models import DEFAULT_PRICE_MODEL, MessageRole, PriceKind, ReplyStatus, TransactionKind

# The dialog (if the caller may write to it), its assistant's generation settings and the price of the
# assistant's model, read together so that nothing needs a cache to be invalidated.
_TURN_CONTEXT = text("""
    SELECT d.owner_id, d.assistant_id, d.operator_id, d.instructions,
           coalesce(d.temperature, a.temperature) AS temperature,
           least(a.max_tokens, coalesce(d.max_tokens, a.max_tokens)) AS max_tokens,
           a.model, a.prompt_version_id, a.system_prompt,
           p.input_micros_per_mtok, p.output_micros_per_mtok, p.currency AS price_currency,
           (p.model IS NOT NULL AND p.kind = :chat_kind AND p.model <> :default_model) AS priced
    FROM dialogs AS d
    JOIN assistants AS a ON a.id = d.assistant_id
    LEFT JOIN prices AS p ON p.model = a.model
    WHERE d.id = :dialog_id AND (:any_owner OR d.owner_id = :user_id)
""")

_MESSAGE_COLUMNS = """
    id, owner_id, dialog_id, role, content, status, reply_to_id, idempotency_key, request_id, created_at,
    completed_at, model, max_tokens, temperature, system_prompt_id, attempt, tokens
"""
# The user message then its queued reply (in this order: seq), in one INSERT.
_TURN_ROWS = f"""
    INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES
        (:message_id, :owner_id, :dialog_id, CAST(:user_role AS message_role), :content,
         CAST(:completed AS reply_status), NULL, :idempotency_key, :request_id, :now, :now,
         NULL, NULL, NULL, NULL, 1, :tokens),
        (:reply_id, :owner_id, :dialog_id, CAST(:assistant_role AS message_role), '',
         CAST(:queued AS reply_status), :message_id, NULL, :request_id, :now, NULL,
         :model, :max_tokens, :temperature, :system_prompt_id, 1, NULL)
"""
_TURN = text(f"{_TURN_ROWS} RETURNING id")
# The same with the reply's hold: the balance row's conditional update, its ledger entry, and both
# messages. No hold (the balance does not cover it) writes nothing: the messages are inserted from it.
_TURN_WITH_HOLD = text(f"""
    WITH hold AS (
        UPDATE balances SET held_micros = held_micros + :amount, updated_at = :now
        WHERE user_id = :owner_id AND balance_micros - held_micros >= :amount
        RETURNING balance_micros, held_micros, currency
    ), entry AS (
        INSERT INTO transactions (id, owner_id, kind, amount_micros, balance_after_micros, held_after_micros,
                                  currency, idempotency_key, reference, created_at)
        SELECT :transaction_id, :owner_id, CAST(:hold_kind AS transaction_kind), :amount, balance_micros,
               held_micros, currency, :hold_key, :reference, :now
        FROM hold
    ), turn AS (
        INSERT INTO messages ({_MESSAGE_COLUMNS})
        SELECT rows.* FROM (VALUES
            (CAST(:message_id AS uuid), CAST(:owner_id AS uuid), CAST(:dialog_id AS uuid),
             CAST(:user_role AS message_role), CAST(:content AS text), CAST(:completed AS reply_status),
             CAST(NULL AS uuid), CAST(:idempotency_key AS varchar), CAST(:request_id AS varchar),
             CAST(:now AS timestamptz), CAST(:now AS timestamptz), CAST(NULL AS varchar), CAST(NULL AS int),
             CAST(NULL AS float8), CAST(NULL AS uuid), 1, CAST(:tokens AS int)),
            (:reply_id, :owner_id, :dialog_id, CAST(:assistant_role AS message_role), '',
             CAST(:queued AS reply_status), :message_id, NULL, :request_id, :now, NULL,
             :model, :max_tokens, :temperature, :system_prompt_id, 1, NULL)
        ) AS rows
        WHERE EXISTS (SELECT 1 FROM hold)
    )
    SELECT balance_micros, held_micros FROM hold
""")
_AVAILABLE = text("SELECT balance_micros - held_micros FROM balances WHERE user_id = :owner_id")

_CONSTANTS = {
    "user_role": MessageRole.user.value, "assistant_role": MessageRole.assistant.value,
    "completed": ReplyStatus.completed.value, "queued": ReplyStatus.queued.value,
    "hold_kind": TransactionKind.hold.value,
}  # fmt: skip


async def turn_context(
    session: AsyncSession, dialog_id: uuid.UUID, user_id: uuid.UUID, any_owner: bool
) -> Any | None:
    params = {
        "dialog_id": dialog_id, "user_id": user_id, "any_owner": any_owner,
        "chat_kind": PriceKind.chat.value, "default_model": DEFAULT_PRICE_MODEL,
    }  # fmt: skip
    return (await session.execute(_TURN_CONTEXT, params)).first()


async def insert_turn(session: AsyncSession, row: dict[str, Any]) -> None:
    """The user message and its queued reply (no hold: billing is off)."""
    await session.execute(_TURN, {**_CONSTANTS, **row})


async def insert_turn_with_hold(
    session: AsyncSession, row: dict[str, Any], amount: int, hold_key: str, now: datetime
) -> tuple[int, int] | None:
    """Hold ``amount`` and write the turn; the balance and held amount after, or ``None`` (nothing
    written) when the balance does not cover it."""
    params = {
        **_CONSTANTS, **row, "amount": amount, "hold_key": hold_key, "reference": str(row["reply_id"]),
        "transaction_id": uuid.uuid4(), "now": now,
    }  # fmt: skip
    held = (await session.execute(_TURN_WITH_HOLD, params)).first()
    return None if held is None else (int(held[0]), int(held[1]))


async def available_micros(session: AsyncSession, owner_id: uuid.UUID) -> int:
    return int((await session.execute(_AVAILABLE, {"owner_id": owner_id})).scalar() or 0)
