"""Billing benchmark: charges settled per second by one billing worker process, and the accept-path cost
of placing a hold (``POST …/messages`` p50/p99 with billing on, as a ratio to billing off, same run).

    .venv/bin/python -m bench.billing [--settles 2000] [--posts 400] [--redis-db 3]

Runs real processes against the embedded test Postgres (a database of its own) and a Redis db of its own:
two API processes on one database (``CHATAI_BILLING_ENABLED`` true and false) and one billing worker.
No llm worker runs: replies stay queued, so the accept path is measured alone, and settle tasks are
queued for replies marked completed in the database, then drained by the billing worker.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import httpx
import redis
from celery import Celery

from bench.stats import p50, p99
from core.queues import TASKS
from tests.fixtures.api import Account, new_dialog, signup
from tests.fixtures.database import DatabaseFactory, sql
from tests.fixtures.processes import ROOT, eventually
from tests.fixtures.stack import Stack, base_env

LOG_DIR = ROOT / ".data" / "bench-logs" / "billing"


async def timed_posts(http: httpx.AsyncClient, user: Account, dialog_id: str, n: int) -> list[float]:
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        r = await http.post(
            f"/api/dialogs/{dialog_id}/messages", json={"content": f"bench {i}"}, headers=user.headers
        )
        latencies.append(time.perf_counter() - started)
        assert r.status_code == 202, r.text
    return latencies


async def accept_path(on: Stack, off: Stack, posts: int) -> dict[str, list[float]]:
    """Alternate rounds between the two APIs so drift on a shared machine hits both alike."""
    results: dict[str, list[float]] = {"on": [], "off": []}
    async with (
        httpx.AsyncClient(base_url=on.base_url, timeout=30) as h_on,
        httpx.AsyncClient(base_url=off.base_url, timeout=30) as h_off,
    ):
        users = {"on": await signup(h_on, "bench-on"), "off": await signup(h_off, "bench-off")}
        dialogs = {
            "on": (await new_dialog(h_on, users["on"]))[1],
            "off": (await new_dialog(h_off, users["off"]))[1],
        }
        clients = {"on": h_on, "off": h_off}
        await timed_posts(h_on, users["on"], dialogs["on"], 20)  # warm-up
        await timed_posts(h_off, users["off"], dialogs["off"], 20)
        rounds = 10
        for _ in range(rounds):
            for label in ("on", "off"):
                results[label] += await timed_posts(
                    clients[label], users[label], dialogs[label], posts // rounds
                )
    return results


def settle_throughput(on: Stack, database_url: str, broker_url: str) -> tuple[int, float]:
    """Mark held replies completed, queue one settle task each, time one billing worker draining them."""
    rows = sql(
        database_url,
        """UPDATE messages SET status = 'completed', prompt_tokens = 200, completion_tokens = 50,
                  completed_at = now(), content = 'done'
           WHERE role = 'assistant' AND status = 'queued'
             AND id::text IN (SELECT reference FROM transactions WHERE kind = 'hold')
           RETURNING id::text""",
    )
    reply_ids = [r[0] for r in rows]
    on.start_worker("billing")  # started and idle first: start-up is not part of the measure
    app = Celery("bench-billing", broker=broker_url)
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for reply_id in reply_ids:
            app.send_task(TASKS.settle_reply, args=[reply_id], queue="billing", producer=producer)
    app.close()

    def drained() -> bool:
        (released,), *_ = sql(database_url, "SELECT count(*) FROM transactions WHERE kind = 'release'")
        return released >= len(reply_ids)

    eventually(drained, 600, "the billing worker to settle every reply", interval=0.02)
    return len(reply_ids), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settles", type=int, default=2000, help="replies to settle (also posted first)")
    parser.add_argument("--posts", type=int, default=400, help="timed posts per variant")
    parser.add_argument("--redis-db", type=int, default=3)
    args = parser.parse_args()

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    databases = DatabaseFactory()
    databases.build_template()
    name = databases.create_from_template("bench_billing")
    database_url = databases.url(name)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = base_env(database_url, redis_url, Path(LOG_DIR), CHATAI_SIGNUP_CREDIT_MICROS=str(10**12),
                   CHATAI_RECONCILE_ENABLED="false")  # fmt: skip
    on = Stack(env, LOG_DIR)
    off = Stack({**env, "CHATAI_BILLING_ENABLED": "false"}, LOG_DIR)
    try:
        on.start_api()
        off.start_api()
        latencies = asyncio.run(accept_path(on, off, args.posts))

        async def fill() -> None:  # more held replies for the settle phase
            async with httpx.AsyncClient(base_url=on.base_url, timeout=30) as http:
                user = await signup(http, "bench-fill")
                _, dialog_id = await new_dialog(http, user)
                await timed_posts(http, user, dialog_id, max(0, args.settles - args.posts - 20))

        asyncio.run(fill())
        settled, seconds = settle_throughput(on, database_url, redis_url)
    finally:
        on.stop()
        off.stop()
        databases.drop(name)
        databases.drop(databases.template)

    on_ms = [x * 1000 for x in latencies["on"]]
    off_ms = [x * 1000 for x in latencies["off"]]
    print()
    print("| measure | billing on | baseline (billing off) | ratio |")
    print("|---|---|---|---|")
    for label, stat in (("p50", p50), ("p99", p99)):
        value, base = stat(on_ms), stat(off_ms)
        print(f"| POST …/messages {label} (ms) | {value:.2f} | {base:.2f} | {value / base:.2f} |")
    print(f"| charges settled/s, one billing worker ({settled} replies) | {settled / seconds:.0f} | - | - |")
    print(f"\nposts per variant: {len(on_ms)}; settle drain {seconds:.2f}s (includes sending the tasks)")


if __name__ == "__main__":
    main()
