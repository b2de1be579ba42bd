"""Maintenance's statements (services/operations/queries.py), each against real rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.operations import queries
from tests.fixtures.queries import Connection, Rows, rows_of

OLD = "now() - interval '100 days'"


async def idle_dialog(
    rows: Rows, owner: uuid.UUID, assistant: uuid.UUID, last_message: str = OLD
) -> uuid.UUID:
    dialog = await rows.dialog(owner, assistant)
    await rows.message(owner, dialog, "user", "completed", "hello")
    await rows.conn.execute(
        f"UPDATE messages SET created_at = {last_message} WHERE dialog_id = %s", (dialog,)
    )
    await rows.conn.execute(
        f"UPDATE dialogs SET created_at = {OLD}, updated_at = {OLD} WHERE id = %s", (dialog,)
    )
    return dialog


async def remaining(session: AsyncSession, dialogs: list[uuid.UUID]) -> set[uuid.UUID]:
    found = await session.execute(text("SELECT id FROM dialogs WHERE id = ANY(:ids)"), {"ids": dialogs})
    return {row.id for row in found}


async def test_only_idle_dialogs_go_a_batch_at_a_time(orm: AsyncSession) -> None:
    rows = await rows_of(orm)
    owner = await rows.user()
    assistant = await rows.assistant(owner)
    idle = [await idle_dialog(rows, owner, assistant) for _ in range(3)]
    active = await idle_dialog(rows, owner, assistant, last_message="now()")
    chat_current = await idle_dialog(rows, owner, assistant)
    bot = await rows._insert(
        "INSERT INTO telegram_bots (id, owner_id, assistant_id, telegram_id, username, token_encrypted,"
        " webhook_secret, status, pending_update_count, updated_at)"
        " VALUES (gen_random_uuid(), %s, %s, %s, 'b', 'x', 's', 'active', 0, now()) RETURNING id",
        owner, assistant, uuid.uuid4().int % 2**62,
    )  # fmt: skip
    await rows._insert(
        "INSERT INTO telegram_chats (id, bot_id, owner_id, chat_id, chat_type, dialog_id, active, updated_at)"
        " VALUES (gen_random_uuid(), %s, %s, 1, 'private', %s, true, now()) RETURNING id",
        bot, owner, chat_current,
    )  # fmt: skip
    cutoff = (await orm.scalar(text("SELECT now()"))) - timedelta(days=30)

    assert await queries.delete_idle_dialogs(orm, cutoff, batch=2) == 2
    assert await queries.delete_idle_dialogs(orm, cutoff, batch=2) == 1
    assert await queries.delete_idle_dialogs(orm, cutoff, batch=2) == 0
    assert await remaining(orm, [*idle, active, chat_current]) == {active, chat_current}
    messages = await orm.scalar(
        text("SELECT count(*) FROM messages WHERE dialog_id = ANY(:ids)"), {"ids": idle}
    )
    assert messages == 0, "their messages go with them"


@pytest.fixture
async def committed(pg_other: Connection) -> AsyncIterator[Rows]:
    """Rows other sessions see; removed after the test's own sessions have ended."""
    rows = Rows(pg_other)
    owner = await rows.user()
    rows.owner = owner  # type: ignore[attr-defined]
    yield rows
    await pg_other.execute("DELETE FROM users WHERE id = %s", (owner,))


async def test_a_dialog_another_transaction_holds_is_left_for_later(
    committed: Rows, orm: AsyncSession, pg: Connection
) -> None:
    owner = committed.owner  # type: ignore[attr-defined]
    assistant = await committed.assistant(owner)
    held = await idle_dialog(committed, owner, assistant)
    free = await idle_dialog(committed, owner, assistant)
    await pg.execute("SELECT 1 FROM dialogs WHERE id = %s FOR UPDATE", (held,))
    cutoff = (await orm.scalar(text("SELECT now()"))) - timedelta(days=30)
    assert await queries.delete_idle_dialogs(orm, cutoff, batch=10) == 1
    assert await remaining(orm, [held, free]) == {held}
