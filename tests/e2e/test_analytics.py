"""Usage rollups against a direct count over generated raw rows, through the service, the beat-driven
analytics worker and ``GET /api/analytics/usage``.

Traffic is inserted with SQL across several days, with timestamps written in several time zones; periods
are UTC. The expected rows are counted in Python from the generated rows, not by the code under test.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from services.analytics import queries, rollups
from tests.fixtures.api import Account, new_assistant, signup
from tests.fixtures.billing import make_admin
from tests.fixtures.database import sql
from tests.fixtures.processes import eventually
from tests.fixtures.stack import Stack, running_stack

ZONES = [timezone(timedelta(hours=h, minutes=m)) for h, m in ((0, 0), (-5, 0), (5, 30), (13, 45), (-11, 0))]
COUNT_COLUMNS = queries.COUNTS
PERCENTILES = ("latency_p50_ms", "latency_p95_ms")


@dataclass
class Row:
    assistant_id: str
    dialog_id: str
    end_user: str
    role: str
    status: str
    created_at: datetime
    latency_ms: float | None
    usage: tuple[int, int, int] | None  # prompt, completion, cost of a reply


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], log_dir: Any) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_ANALYTICS_HOURLY_ROLLUP_SECONDS": "1",
        "CHATAI_ANALYTICS_DAILY_ROLLUP_SECONDS": "1",
        "CHATAI_CANARY_ENABLED": "false",
    }
    with running_stack(env, log_dir, workers=()) as system:
        yield system


def percentile(values: list[float], q: float) -> float | None:
    """Postgres ``percentile_cont``: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def floor(granularity: str, at: datetime) -> datetime:
    return rollups.period_floor(granularity, at)  # type: ignore[arg-type]


def expected_rows(rows: list[Row], granularity: str) -> dict[tuple[str, datetime], dict[str, Any]]:
    groups: dict[tuple[str, datetime], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.assistant_id, floor(granularity, row.created_at))].append(row)
    result = {}
    for key, group in groups.items():
        replies = [r for r in group if r.role == "assistant"]
        latencies = [r.latency_ms for r in replies if r.latency_ms is not None]
        result[key] = {
            "messages": len(group),
            "replies": len(replies),
            "failed_replies": sum(r.status == "failed" for r in replies),
            "dialogs": len({r.dialog_id for r in group}),
            "end_users": len({r.end_user for r in group}),
            "prompt_tokens": sum(r.usage[0] for r in replies if r.usage),
            "completion_tokens": sum(r.usage[1] for r in replies if r.usage),
            "cost_micros": sum(r.usage[2] for r in replies if r.usage),
            "latency_p50_ms": percentile(latencies, 0.5),
            "latency_p95_ms": percentile(latencies, 0.95),
        }
    return result


def stored_rows(database_url: str, granularity: str) -> dict[tuple[str, datetime], dict[str, Any]]:
    columns = ", ".join(queries.COLUMNS)
    found = sql(
        database_url,
        f"SELECT assistant_id::text, period_start, {columns} FROM usage_rollups WHERE granularity = %s",
        granularity,
    )
    return {(r[0], r[1].astimezone(UTC)): dict(zip(queries.COLUMNS, r[2:], strict=True)) for r in found}


def assert_same(actual: dict[Any, dict[str, Any]], expected: dict[Any, dict[str, Any]]) -> None:
    assert set(actual) == set(expected)
    for key, want in expected.items():
        got = actual[key]
        assert {c: got[c] for c in COUNT_COLUMNS} == {c: want[c] for c in COUNT_COLUMNS}, key
        for column in PERCENTILES:
            if want[column] is None:
                assert got[column] is None, (key, column)
            else:
                assert got[column] == pytest.approx(want[column], abs=0.01), (key, column)


def insert_message(database_url: str, owner_id: str, row: Row, rng: random.Random) -> None:
    message_id = str(uuid.uuid4())
    started = completed = None
    if row.role == "assistant" and row.status in ("completed", "failed"):
        started = row.created_at + timedelta(milliseconds=rng.randint(5, 500))
        duration = timedelta(milliseconds=row.latency_ms if row.latency_ms is not None else 50)
        completed = started + duration
    sql(
        database_url,
        "INSERT INTO messages (id, owner_id, dialog_id, role, content, status, attempt, created_at,"
        " started_at, completed_at) VALUES (%s, %s, %s, %s, 'x', %s, 1, %s, %s, %s)",
        message_id, owner_id, row.dialog_id, row.role, row.status, row.created_at, started, completed,
    )  # fmt: skip
    if row.usage:
        sql(
            database_url,
            "INSERT INTO usage_records (id, owner_id, kind, subject_id, model, prompt_tokens,"
            " completion_tokens, cost_micros, currency) VALUES (%s, %s, 'reply', %s, 'm', %s, %s, %s, 'USD')",
            str(uuid.uuid4()), owner_id, message_id, *row.usage,
        )  # fmt: skip


def generate(database_url: str, owners: dict[str, str], people: list[str], now: datetime) -> list[Row]:
    """Dialogs with user messages and replies over the last four days, in several time zones."""
    rng = random.Random(6)
    rows: list[Row] = []
    for assistant_id in owners:
        for _ in range(6):
            dialog_id = str(uuid.uuid4())
            person = rng.choice(people)  # the account that opened the dialog: its end user
            sql(
                database_url,
                "INSERT INTO dialogs (id, owner_id, assistant_id, status, created_at, updated_at)"
                " VALUES (%s, %s, %s, 'active', %s, %s)",
                dialog_id, person, assistant_id, now - timedelta(days=5), now - timedelta(days=5),
            )  # fmt: skip
            for _ in range(rng.randint(3, 12)):
                at = now - timedelta(minutes=rng.randint(1, 4 * 24 * 60))
                at = at.astimezone(rng.choice(ZONES))
                rows.append(Row(assistant_id, dialog_id, person, "user", "completed", at, None, None))
                status = rng.choice(["completed", "completed", "completed", "failed", "generating"])
                latency = float(rng.randint(100, 9000)) if status == "completed" else None
                usage = (
                    (rng.randint(10, 900), rng.randint(1, 300), rng.randint(0, 5000))
                    if status == "completed"
                    else None
                )
                rows.append(Row(assistant_id, dialog_id, person, "assistant", status, at, latency, usage))
    for row in rows:
        insert_message(database_url, owners[row.assistant_id], row, rng)
    return rows


@pytest.fixture(scope="module")
async def traffic(stack: Stack, database_url: str) -> tuple[dict[str, Account], dict[str, str], list[Row]]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        accounts = {name: await signup(http, name) for name in ("alice", "bob", "carol")}
        owners: dict[str, str] = {}
        for name, count in (("alice", 2), ("bob", 1)):
            for i in range(count):
                assistant_id = await new_assistant(http, accounts[name], name=f"{name}-{i}")
                owners[assistant_id] = accounts[name].user_id
    people = [a.user_id for a in accounts.values()]
    rows = generate(database_url, owners, people, datetime.now(UTC))
    return accounts, owners, rows


async def run_rollup(database_url: str, granularity: str, start: datetime, end: datetime) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            # Periods are UTC whatever the session's time zone.
            await conn.execute(text("SET TIME ZONE 'Pacific/Chatham'"))
            session = AsyncSession(bind=conn)
            await rollups.rollup(session, granularity, start, end)  # type: ignore[arg-type]
            await session.flush()
    finally:
        await engine.dispose()


async def test_rollups_equal_a_direct_count_and_rerun_gives_the_same_rows(
    traffic: tuple[dict[str, Account], dict[str, str], list[Row]], database_url: str
) -> None:
    _, _, rows = traffic
    now = datetime.now(UTC)
    for granularity in ("day", "hour"):
        await run_rollup(database_url, granularity, now - timedelta(days=6), now + timedelta(days=1))
        first = stored_rows(database_url, granularity)
        assert_same(first, expected_rows(rows, granularity))
        await run_rollup(database_url, granularity, now - timedelta(days=6), now + timedelta(days=1))
        assert stored_rows(database_url, granularity) == first
    assert len(stored_rows(database_url, "day")) >= 3 * 4  # three assistants over four or five days


async def test_beat_and_the_analytics_worker_roll_up_recent_periods(
    traffic: tuple[dict[str, Account], dict[str, str], list[Row]], database_url: str, stack: Stack
) -> None:
    _, _, rows = traffic
    sql(database_url, "DELETE FROM usage_rollups")
    stack.start_worker("analytics")
    stack.start_beat()
    now = datetime.now(UTC)
    recent = {k for k in expected_rows(rows, "hour") if k[1] >= floor("hour", now) - timedelta(hours=1)}

    def rolled_up() -> bool:
        return recent <= set(stored_rows(database_url, "hour"))

    eventually(rolled_up, 60, "the hourly rollup of the current and previous hour")
    expected = expected_rows(rows, "hour")
    assert_same({k: v for k, v in stored_rows(database_url, "hour").items() if k in recent},
                {k: expected[k] for k in recent})  # fmt: skip
    # Only recent periods are recomputed: older hours were not written by these runs.
    assert all(k[1] >= floor("hour", now) - timedelta(hours=1) for k in stored_rows(database_url, "hour"))


async def test_usage_endpoint_scopes_and_live_today(
    traffic: tuple[dict[str, Account], dict[str, str], list[Row]],
    database_url: str,
    http: httpx.AsyncClient,
) -> None:
    accounts, owners, rows = traffic
    alice, bob, carol = accounts["alice"], accounts["bob"], accounts["carol"]
    now = datetime.now(UTC)
    await run_rollup(database_url, "day", now - timedelta(days=6), now)
    # A message arriving after the rollups shows up in today's live row.
    alice_assistant = next(a for a, o in owners.items() if o == alice.user_id)
    dialog_id = next(r.dialog_id for r in rows if r.assistant_id == alice_assistant)
    person = next(r.end_user for r in rows if r.dialog_id == dialog_id)
    late = Row(alice_assistant, dialog_id, person, "user", "completed", datetime.now(UTC), None, None)
    insert_message(database_url, alice.user_id, late, random.Random(1))
    today = floor("day", datetime.now(UTC))
    expected = expected_rows([*rows, late], "day")

    since = (now - timedelta(days=6)).isoformat()
    r = await http.get("/api/analytics/usage", params={"from": since}, headers=alice.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    got = {(i["assistant_id"], datetime.fromisoformat(i["period_start"])): i for i in items}
    assert_same(got, {k: v for k, v in expected.items() if owners[k[0]] == alice.user_id})
    assert (alice_assistant, today) in got

    one = await http.get(
        "/api/analytics/usage", params={"from": since, "assistant_id": alice_assistant}, headers=alice.headers
    )
    assert {i["assistant_id"] for i in one.json()["items"]} == {alice_assistant}

    # Another tenant's assistant is not found; other users' and the platform's series are for admins.
    r = await http.get("/api/analytics/usage", params={"assistant_id": alice_assistant}, headers=bob.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await http.get("/api/analytics/usage", params={"platform": "true"}, headers=bob.headers)
    assert r.status_code == 403
    r = await http.get("/api/analytics/usage", params={"user_id": alice.user_id}, headers=bob.headers)
    assert r.status_code == 403
    r = await http.get("/api/analytics/usage", params={"granularity": "week"}, headers=bob.headers)
    assert r.status_code == 422

    make_admin(database_url, carol.user_id)
    r = await http.get(
        "/api/analytics/usage", params={"from": since, "user_id": alice.user_id}, headers=carol.headers
    )
    assert r.json()["items"] == items
    r = await http.get(
        "/api/analytics/usage", params={"from": since, "platform": "true"}, headers=carol.headers
    )
    platform = {datetime.fromisoformat(i["period_start"]): i for i in r.json()["items"]}
    for period in {k[1] for k in expected}:
        assert platform[period]["messages"] == sum(
            v["messages"] for k, v in expected.items() if k[1] == period
        )
        assert platform[period]["assistant_id"] is None
