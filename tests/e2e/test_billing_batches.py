"""A burst of 1,000 finished replies settled through the batched path (a Redis list, a batch per
transaction): every reply charged once and its hold released once, every balance equal to its ledger,
with the billing worker killed in the middle of it and the same replies queued again afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from core.queues import TASKS
from services.billing.settlements import PENDING_KEY
from tests.fixtures.api import Account, new_dialog, signup
from tests.fixtures.billing import balance_row, ledger_sums, send_task
from tests.fixtures.database import sql
from tests.fixtures.processes import eventually
from tests.fixtures.stack import Stack, running_stack

OWNERS = 4
REPLIES_PER_OWNER = 250
BATCH = 20


@pytest.fixture(scope="module")
def batch_stack(stack_env: dict[str, str], log_dir: Path) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_SIGNUP_CREDIT_MICROS": str(10**12),
        "CHATAI_ADMISSION_MAX_QUEUED_REPLIES": "0",  # the replies wait in the llm queue on purpose
        "CHATAI_BILLING_SETTLE_BATCH_SIZE": str(BATCH),
        "CHATAI_BILLING_HOLD_SWEEP_SECONDS": "0",  # the sweep the test sends picks up every open hold
    }
    # No llm worker: the test finishes the replies itself; billing workers are started by the test.
    with running_stack(env, log_dir, workers=()) as system:
        yield system


@pytest.fixture
async def http(batch_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=batch_stack.base_url, timeout=60) as client:
        yield client


async def queue_replies(http: httpx.AsyncClient, owner: Account, n: int) -> list[str]:
    _, dialog_id = await new_dialog(http, owner)
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> str:
        async with sem:
            r = await http.post(
                f"/api/dialogs/{dialog_id}/messages", json={"content": f"q {i}"}, headers=owner.headers
            )
        assert r.status_code == 202, r.text
        return str(r.json()["reply"]["id"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def settle_runs(log: str) -> int:
    """Batch settle tasks the worker has finished, from its log."""
    return sum(1 for line in log.splitlines() if TASKS.settle_reply in line and "succeeded" in line)


def released(database_url: str) -> int:
    ((n,),) = sql(database_url, "SELECT count(*) FROM transactions WHERE kind = 'release'")
    return int(n)


async def test_a_burst_of_replies_is_settled_once_each_through_batches(
    http: httpx.AsyncClient, batch_stack: Stack, database_url: str
) -> None:
    owners = [await signup(http, f"burst{i}") for i in range(OWNERS)]
    reply_ids = [rid for owner in owners for rid in await queue_replies(http, owner, REPLIES_PER_OWNER)]
    assert len(set(reply_ids)) == OWNERS * REPLIES_PER_OWNER
    # They finished, as the llm worker's finishing statement leaves them; then each queues its settlement.
    sql(
        database_url,
        "UPDATE messages SET status = 'completed', content = 'done', prompt_tokens = 120,"
        " completion_tokens = 40, completed_at = now() WHERE id = ANY(%s::uuid[])",
        reply_ids,
    )
    broker = redis.Redis.from_url(batch_stack.env["REDIS_URL"])
    broker.delete(PENDING_KEY)
    broker.rpush(PENDING_KEY, *reply_ids)
    send_task(batch_stack.env["REDIS_URL"], TASKS.settle_reply, reply_ids[0])

    # The worker dies with batches still to go (maybe inside one's transaction).
    worker = batch_stack.start_worker("billing")
    eventually(lambda: released(database_url) > 0, 60, "the first batch to be settled")
    worker.kill()
    settled_before_the_kill = released(database_url)

    # A new worker takes the rest of the list; the sweep settles what the dead one had taken.
    worker = batch_stack.start_worker("billing")
    send_task(batch_stack.env["REDIS_URL"], TASKS.settle_reply, reply_ids[0])
    send_task(batch_stack.env["REDIS_URL"], TASKS.sweep_holds)
    total = len(reply_ids)
    eventually(lambda: released(database_url) >= total and broker.llen(PENDING_KEY) == 0, 120, "all settled")

    # Delivered again, in batches: nothing is booked twice.
    runs = settle_runs(worker.log_text())
    broker.rpush(PENDING_KEY, *reply_ids[:300])
    send_task(batch_stack.env["REDIS_URL"], TASKS.settle_reply, reply_ids[0])
    eventually(lambda: settle_runs(worker.log_text()) > runs, 60, "the repeated ids to be settled again")
    assert broker.llen(PENDING_KEY) == 0

    per_reply = sql(
        database_url,
        """SELECT m.id::text, m.cost_micros,
                  count(*) FILTER (WHERE t.kind = 'hold'), count(*) FILTER (WHERE t.kind = 'release'),
                  count(*) FILTER (WHERE t.kind = 'charge'), COALESCE(-sum(t.amount_micros)
                      FILTER (WHERE t.kind = 'charge'), 0),
                  (SELECT count(*) FROM usage_records u WHERE u.subject_id = m.id)
           FROM messages m JOIN transactions t ON t.reference = m.id::text
           WHERE m.id = ANY(%s::uuid[]) GROUP BY m.id, m.cost_micros""",
        reply_ids,
    )
    assert len(per_reply) == total
    for reply_id, cost, holds, releases, charges, charged, usage in per_reply:
        assert (holds, releases, usage) == (1, 1, 1), reply_id
        assert charges == (1 if cost else 0) and charged == cost, reply_id
    for owner in owners:
        balance, held = balance_row(database_url, owner.user_id)
        assert (balance, held) == ledger_sums(database_url, owner.user_id)
        assert held == 0
    assert settled_before_the_kill > 0
    assert any(cost > 0 for _, cost, *_ in per_reply)
