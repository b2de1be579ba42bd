"""Analytics benchmark: rollup time over many synthetic messages, and ``GET /api/analytics/usage`` latency
for a year of daily data, against ``GET /health/live`` on the same API as the baseline.

    .venv/bin/python -m bench.analytics [--messages 10000000] [--days 90] [--assistants 20] [--requests 300]

Runs against the embedded test Postgres (a database of its own) and a Redis db of its own. Messages are
written with ``generate_series`` (half user messages, half replies with usage, 2 % failed), spread evenly
over ``--days`` days and over the owner's assistants and dialogs; the rollups are then computed by the
same service the beat jobs call (``services.analytics.rollups.rollup``). Daily rows for the rest of the
year are added straight to ``usage_rollups`` so the endpoint reads a full year.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import time
from pathlib import Path

import httpx
import psycopg

from bench.stats import p50, p99
from core.db import to_libpq
from tests.fixtures.api import signup
from tests.fixtures.database import DatabaseFactory, sql
from tests.fixtures.processes import ROOT
from tests.fixtures.stack import Stack, base_env

LOG_DIR = ROOT / ".data" / "bench-logs" / "analytics"
RESULTS = ROOT / "bench" / "results" / "analytics.md"
TARGET_P99_MS = 50.0
BATCH = 1_000_000
DIALOGS_PER_ASSISTANT = 200

_INSERT_MESSAGES = """
WITH d AS (SELECT array_agg(id ORDER BY id) AS ids FROM dialogs WHERE owner_id = %(owner)s)
INSERT INTO messages (id, owner_id, dialog_id, role, content, status, attempt, citations, model,
                      prompt_tokens, completion_tokens, cost_micros, created_at, started_at, completed_at)
SELECT gen_random_uuid(), %(owner)s, d.ids[1 + g %% cardinality(d.ids)],
       CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END::message_role, 'x',
       CASE WHEN g %% 2 = 1 AND g %% 100 = 1 THEN 'failed' ELSE 'completed' END::reply_status,
       1, '[]', 'bench-model',
       CASE WHEN g %% 2 = 1 THEN 200 + g %% 300 END, CASE WHEN g %% 2 = 1 THEN 50 + g %% 200 END,
       CASE WHEN g %% 2 = 1 THEN 1000 + g %% 5000 END,
       t.at, t.at, t.at + make_interval(secs => 0.5 + (g %% 4000) / 1000.0)
FROM d, generate_series(%(first)s::bigint, %(last)s::bigint) AS g,
     LATERAL (SELECT %(start)s::timestamptz + (g - 1) * %(step)s::interval AS at) AS t
"""

_INSERT_OLDER_ROLLUPS = """
INSERT INTO usage_rollups (granularity, assistant_id, period_start, owner_id, messages, replies,
                           failed_replies, dialogs, end_users, prompt_tokens, completion_tokens, cost_micros,
                           latency_p50_ms, latency_p95_ms, computed_at)
SELECT 'day', a.id, day, a.owner_id, 1000, 500, 10, 100, 1, 100000, 30000, 2000000, 1800, 3900, now()
FROM assistants AS a,
     generate_series(%(year_start)s::timestamptz, %(before)s::timestamptz - interval '1 day', '1 day') AS day
WHERE a.owner_id = %(owner)s
ON CONFLICT DO NOTHING
"""


def execute(database_url: str, statement: str, params: dict[str, object]) -> None:
    with psycopg.connect(to_libpq(database_url), autocommit=True) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


async def create_owner(base_url: str, assistants: int) -> tuple[str, dict[str, str]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        owner = await signup(http, "bench-analytics")
        for i in range(assistants):
            r = await http.post("/api/assistants", json={"name": f"a{i}"}, headers=owner.headers)
            assert r.status_code == 201, r.text
    return owner.user_id, owner.headers


def fill_messages(database_url: str, owner_id: str, messages: int, start: dt.datetime, days: int) -> float:
    sql(
        database_url,
        "INSERT INTO dialogs (id, owner_id, assistant_id, status, created_at, updated_at)"
        " SELECT gen_random_uuid(), a.owner_id, a.id, 'active', %s, %s"
        " FROM assistants AS a, generate_series(1, %s) WHERE a.owner_id = %s",
        start, start, DIALOGS_PER_ASSISTANT, owner_id,
    )  # fmt: skip
    step = dt.timedelta(days=days) / messages
    started = time.perf_counter()
    for first in range(1, messages + 1, BATCH):
        last = min(messages, first + BATCH - 1)
        params = {"owner": owner_id, "first": first, "last": last, "start": start, "step": step}
        execute(database_url, _INSERT_MESSAGES, params)
        print(f"  {last:,} messages written ({time.perf_counter() - started:.0f} s)", flush=True)
    sql(database_url, "ANALYZE messages; ANALYZE dialogs")
    return time.perf_counter() - started


async def timed_rollup(
    database_url: str, granularity: str, start: dt.datetime, end: dt.datetime
) -> tuple[float, int]:
    os.environ["DATABASE_URL"] = database_url
    from core.db import reset_engines
    from core.unit_of_work import unit_of_work
    from services.analytics.rollups import rollup

    reset_engines()
    started = time.perf_counter()
    async with unit_of_work() as session:
        result = await rollup(session, granularity, start, end)  # type: ignore[arg-type]
    return time.perf_counter() - started, result.written


def rollup_digest(database_url: str, granularity: str) -> str:
    """A fingerprint of the stored rows of one granularity (without their computation time)."""
    ((digest,),) = sql(
        database_url,
        "SELECT md5(coalesce(string_agg(row(assistant_id, period_start, owner_id, messages, replies,"
        " failed_replies, dialogs, end_users, prompt_tokens, completion_tokens, cost_micros, latency_p50_ms,"
        " latency_p95_ms)::text, ',' ORDER BY assistant_id, period_start), ''))"
        " FROM usage_rollups WHERE granularity = %s",
        granularity,
    )
    return str(digest)


async def timed_gets(base_url: str, path: str, headers: dict[str, str], n: int) -> list[float]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for _ in range(20):  # warm-up
            assert (await http.get(path, headers=headers)).status_code == 200
        latencies = []
        for _ in range(n):
            started = time.perf_counter()
            r = await http.get(path, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.text
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--assistants", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()

    began = time.monotonic()
    databases = DatabaseFactory()
    databases.build_template()
    name = databases.create_from_template("bench_analytics")
    database_url = databases.url(name)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = base_env(database_url, f"redis://127.0.0.1:6379/{args.redis_db}", Path(LOG_DIR))
    api = Stack(env, LOG_DIR)
    now = dt.datetime.now(dt.UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - dt.timedelta(days=args.days - 1)
    try:
        api.start_api()
        owner_id, headers = asyncio.run(create_owner(api.base_url, args.assistants))
        print(f"writing {args.messages:,} messages over {args.days} days …", flush=True)
        fill_seconds = fill_messages(database_url, owner_id, args.messages, start, args.days)
        rollups, same = {}, {}
        for granularity in ("day", "hour"):
            first = asyncio.run(timed_rollup(database_url, granularity, start, now))
            digest = rollup_digest(database_url, granularity)
            again = asyncio.run(timed_rollup(database_url, granularity, start, now))
            same[granularity] = digest == rollup_digest(database_url, granularity)
            rollups[granularity] = (first, again)
            print(f"  {granularity} rollup: {first[0]:.1f} s, again {again[0]:.1f} s", flush=True)
        year_start = today - dt.timedelta(days=364)
        execute(
            database_url,
            _INSERT_OLDER_ROLLUPS,
            {"year_start": year_start, "before": start, "owner": owner_id},
        )
        frm, to = year_start.isoformat(), (today + dt.timedelta(days=1)).isoformat()
        usage_path = f"/api/analytics/usage?granularity=day&from={frm}&to={to}".replace("+", "%2B")
        usage = asyncio.run(timed_gets(api.base_url, usage_path, headers, args.requests))
        baseline = asyncio.run(timed_gets(api.base_url, "/health/live", {}, args.requests))
    finally:
        api.stop()
        databases.drop(name)
        databases.drop(databases.template)

    per_second = args.messages / rollups["day"][0][0]
    verdict = "**PASS**" if p99(usage) <= TARGET_P99_MS else "**FAIL**"
    rows = [
        ("Synthetic messages written (generate_series, all indexes in place)", "—", "—",
         f"{args.messages:,} in {fill_seconds:.0f} s", "—", "—"),
        (f"**Daily rollup** of {args.days} days ({args.messages:,} messages, {args.assistants} assistants)",
         "—", "—", f"{rollups['day'][0][0]:.1f} s ({rollups['day'][0][1]:,} rows; {per_second:,.0f} msgs/s)",
         f"re-run {rollups['day'][1][0]:.1f} s",
         "re-run gives the same rows" if same["day"] else "**re-run changed rows**"),
        (f"**Hourly rollup** of {args.days} days", "—", "—",
         f"{rollups['hour'][0][0]:.1f} s ({rollups['hour'][0][1]:,} rows)",
         f"re-run {rollups['hour'][1][0]:.1f} s",
         "re-run gives the same rows" if same["hour"] else "**re-run changed rows**"),
        (f"**GET /api/analytics/usage**, a year of daily data ({args.assistants} assistants, today live), "
         f"{args.requests} sequential requests", f"{p50(usage):.1f} ms", f"{p99(usage):.1f} ms", "—",
         f"GET /health/live {p50(baseline):.1f} / {p99(baseline):.1f} ms",
         f"ratio p50 {p50(usage) / p50(baseline):.1f}x; p99 ≤ {TARGET_P99_MS:g} ms: {verdict}"),
    ]  # fmt: skip
    lines = [
        f"## analytics — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: nproc={os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}. "
        f"Run took {time.monotonic() - began:.0f} s. Command: `python -m bench.analytics "
        f"--messages {args.messages} --days {args.days} --assistants {args.assistants}`",
        "",
        "| metric | median (p50) | p99 | value | baseline | ratio/target |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
        "",
        "The rollup is one SQL statement per granularity over the whole range (the beat jobs run it for the "
        "current and previous period only); the usage endpoint reads stored rows for past days and computes "
        "today's from the raw messages. Embedded Postgres defaults (shared_buffers 128 MB).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
