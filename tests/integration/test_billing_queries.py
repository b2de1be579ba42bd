"""Billing's statements (services/billing/queries.py), each against real rows."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.billing import queries
from tests.fixtures.queries import Rows, rows_of


async def entry(
    rows: Rows, owner: uuid.UUID, kind: str, amount: int, key: str, reference: str | None = None,
    minutes_ago: int = 10,
) -> None:  # fmt: skip
    await rows.conn.execute(
        "INSERT INTO transactions (id, owner_id, kind, amount_micros, currency, idempotency_key, reference,"
        " balance_after_micros, held_after_micros, created_at)"
        " VALUES (gen_random_uuid(), %s, %s, %s, 'USD', %s, %s, 0, 0, now() - make_interval(mins => %s))",
        (owner, kind, amount, key, reference, minutes_ago),
    )


async def window(session: AsyncSession) -> tuple[object, object]:
    now = await session.scalar(text("SELECT now()"))
    return now - timedelta(days=7), now - timedelta(minutes=2)


async def test_stale_reply_holds_are_open_holds_of_ended_or_missing_replies(orm: AsyncSession) -> None:
    rows = await rows_of(orm)
    owner = await rows.user()
    dialog = await rows.dialog(owner, await rows.assistant(owner))
    ended = await rows.message(owner, dialog, "assistant", "cancelled")
    settled = await rows.message(owner, dialog, "assistant", "completed")
    running = await rows.message(owner, dialog, "assistant", "generating")
    just_ended = await rows.message(owner, dialog, "assistant", "failed")
    missing = uuid.uuid4()
    for reply in (ended, settled, running, missing):
        await entry(rows, owner, "hold", 10, f"hold:{reply}", str(reply))
    await entry(rows, owner, "hold", 10, f"hold:{just_ended}", str(just_ended), minutes_ago=0)
    await entry(rows, owner, "release", -10, f"release:{settled}", str(settled))
    oldest, newest = await window(orm)

    found = await queries.stale_reply_holds(orm, oldest, newest, 10, "hold:", "release:")  # type: ignore[arg-type]
    assert sorted(found) == sorted([str(ended), str(missing)]), "ended or gone, not settled nor running"
    assert len(await queries.stale_reply_holds(orm, oldest, newest, 1, "hold:", "release:")) == 1  # type: ignore[arg-type]


async def test_stale_indexing_holds_are_those_without_a_release(orm: AsyncSession) -> None:
    rows = await rows_of(orm)
    owner = await rows.user()
    open_key, closed_key = f"embed-hold:{uuid.uuid4()}:upload", f"embed-hold:{uuid.uuid4()}:upload"
    await entry(rows, owner, "hold", 5, open_key)
    await entry(rows, owner, "hold", 5, closed_key)
    await entry(rows, owner, "release", -5, "embed-release:" + closed_key.removeprefix("embed-hold:"))
    await entry(rows, owner, "hold", 5, f"hold:{uuid.uuid4()}")  # a reply's hold is not one of these
    oldest, newest = await window(orm)
    keys = await queries.stale_indexing_holds(orm, oldest, newest, 10, "embed-hold:", "embed-release:")  # type: ignore[arg-type]
    assert keys == [open_key]


async def test_balance_mismatches_compare_money_and_holds_with_the_ledger(orm: AsyncSession) -> None:
    rows = await rows_of(orm)
    exact, off_money, off_held = await rows.user(), await rows.user(), await rows.user()
    for owner in (exact, off_money, off_held):
        await entry(rows, owner, "topup", 100, f"topup:{owner}")
        await entry(rows, owner, "hold", 30, f"hold:{owner}")
    ledger = {exact: (100, 30), off_money: (99, 30), off_held: (100, 29)}
    for owner, (balance, held) in ledger.items():
        await rows.conn.execute(
            "INSERT INTO balances (user_id, balance_micros, held_micros, currency, updated_at)"
            " VALUES (%s, %s, %s, 'USD', now())",
            (owner, balance, held),
        )
    found = {row.user_id: tuple(row)[1:] for row in await queries.balance_mismatches(orm)}
    assert found == {off_money: (99, 30, 100, 30), off_held: (100, 29, 100, 30)}
