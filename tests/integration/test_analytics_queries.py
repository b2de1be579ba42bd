"""Analytics' statements (services/analytics/queries.py), against real rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import queries
from tests.fixtures.queries import rows_of

HOUR = datetime(2026, 3, 1, 10, tzinfo=UTC)


async def message_at(session: AsyncSession, message: uuid.UUID, minutes: int, **columns: object) -> None:
    values = {"created_at": HOUR + timedelta(minutes=minutes), **columns}
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    await session.execute(
        text(f"UPDATE messages SET {assignments} WHERE id = :id"), {**values, "id": message}
    )


async def test_the_aggregate_counts_each_period_and_the_upsert_keeps_only_periods_with_messages(
    orm: AsyncSession,
) -> None:
    rows = await rows_of(orm)
    owner, stranger = await rows.user(), await rows.user()
    assistant = await rows.assistant(owner)
    dialog = await rows.dialog(owner, assistant)
    other_dialog = await rows.dialog(owner, assistant)
    question = await rows.message(owner, dialog, "user", "completed", "q")
    answer = await rows.message(owner, dialog, "assistant", "completed", "a")
    failed = await rows.message(owner, other_dialog, "assistant", "failed")
    await message_at(orm, question, 15)
    await message_at(
        orm, answer, 16, prompt_tokens=1, completion_tokens=1, cost_micros=1,
        started_at=HOUR + timedelta(minutes=16), completed_at=HOUR + timedelta(minutes=16, seconds=2),
    )  # fmt: skip
    await message_at(orm, failed, 65, prompt_tokens=7, completion_tokens=0, cost_micros=3)
    # The billed usage, where there is one, counts instead of the reply's own figures.
    await orm.execute(
        text(
            "INSERT INTO usage_records (id, owner_id, kind, subject_id, model, prompt_tokens,"
            " completion_tokens, cost_micros, currency)"
            " VALUES (gen_random_uuid(), :owner, 'reply', :reply, 'm', 100, 20, 500, 'USD')"
        ),
        {"owner": owner, "reply": answer},
    )

    found = await queries.aggregate(orm, "hour", HOUR, HOUR + timedelta(hours=2))
    by_hour = {row["period_start"]: row for row in found}
    ten, eleven = by_hour[HOUR], by_hour[HOUR + timedelta(hours=1)]
    assert len(found) == 2 and ten["assistant_id"] == assistant and ten["owner_id"] == owner
    assert {c: ten[c] for c in queries.COUNTS} == {
        "messages": 2, "replies": 1, "failed_replies": 0, "dialogs": 1, "end_users": 1,
        "prompt_tokens": 100, "completion_tokens": 20, "cost_micros": 500,
    }  # fmt: skip
    assert ten["latency_p50_ms"] == ten["latency_p95_ms"] == 2000
    assert (eleven["messages"], eleven["replies"], eleven["failed_replies"]) == (1, 1, 1)
    assert (eleven["prompt_tokens"], eleven["cost_micros"], eleven["latency_p50_ms"]) == (7, 3, None)
    assert await queries.aggregate(orm, "hour", HOUR, HOUR + timedelta(hours=2), owner_id=stranger) == []
    assert (
        len(await queries.aggregate(orm, "day", HOUR, HOUR + timedelta(days=1), assistant_id=assistant)) == 1
    )

    assert await queries.upsert_rollups(orm, "hour", HOUR, HOUR + timedelta(hours=2)) == (2, 0)
    assert await queries.upsert_rollups(orm, "hour", HOUR, HOUR + timedelta(hours=2)) == (2, 0), "again: same"
    await orm.execute(text("DELETE FROM messages WHERE id = :id"), {"id": failed})
    assert await queries.upsert_rollups(orm, "hour", HOUR, HOUR + timedelta(hours=2)) == (1, 1)
    rollup_rows = (
        "SELECT period_start, messages FROM usage_rollups WHERE assistant_id = :a AND granularity = :g"
    )
    stored = await orm.execute(text(rollup_rows), {"a": assistant, "g": "hour"})
    assert [(r.period_start, r.messages) for r in stored] == [(HOUR, 2)]
