"""Embedding charges and re-indexing through the real processes, with the ``openai`` embedding provider
against the fake ``/v1/embeddings``.

First the stack runs with the embedding model ``fake-embed-a``: an upload holds its estimated cost and the
billing worker charges the tokens of its chunks, exactly once. Then the stack restarts with
``fake-embed-b``: the admin endpoint re-indexes the documents one by one while searches keep answering
from the old chunks, each document's chunks are swapped in one transaction, each run is charged once per
document; the CLI does the same, and the reaper restarts a run whose chain was lost.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from core.queues import TASKS
from tests.fixtures.api import Account, new_assistant, signup
from tests.fixtures.billing import entries_for, ledger_sums, make_admin, send_task
from tests.fixtures.database import sql
from tests.fixtures.processes import ROOT, Child, eventually
from tests.fixtures.stack import FakeLLM, Stack

MICRO_PER_TOKEN = {"input_micros_per_mtok": 1_000_000, "output_micros_per_mtok": 0}
TOPICS = {
    "refunds.txt": "Refund policy. Customers who return an unused item receive their money back within five "
    "business days. Refunds go to the original payment card.",
    "shipping.txt": "Shipping. Parcels leave our warehouse in Rotterdam every weekday at noon and usually "
    "arrive within two days anywhere in the Netherlands.",
    "security.txt": "Account security. To change your password, open Settings, choose Security and press "
    "the Reset button; a confirmation link is emailed to you.",
}


def document_text(paragraph: str) -> bytes:
    return "\n\n".join(f"Section {i}. {paragraph}" for i in range(12)).encode()


def embedding_env(base: dict[str, str], fake: FakeLLM, model: str) -> dict[str, str]:
    return {
        **base,
        "CHATAI_LLM_PROVIDER": "offline",
        "CHATAI_EMBEDDING_PROVIDER": "openai",
        "CHATAI_EMBEDDING_BASE_URL": fake.base_url,
        "CHATAI_EMBEDDING_API_KEY": "test-key",
        "CHATAI_EMBEDDING_MODEL": model,
        "CHATAI_EMBEDDING_BATCH_SIZE": "4",
        "CHATAI_CHUNK_TOKENS": "48",
        "CHATAI_CHUNK_OVERLAP_TOKENS": "8",
        "CHATAI_DOCUMENT_SILENCE_SECONDS": "3",
        "CHATAI_LLM_CONCURRENCY": "10",
    }


@dataclass
class World:
    boss: Account | None = None
    alice: Account | None = None
    assistant_id: str = ""
    documents: dict[str, str] = field(default_factory=dict)  # filename → id
    chunk_counts: dict[str, int] = field(default_factory=dict)  # document id → chunks


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def start(env: dict[str, str], log_dir: Any, beat: bool = False) -> tuple[Stack, dict[str, Child]]:
    system = Stack(env, log_dir)
    system.start_api()
    workers = {queue: system.start_worker(queue) for queue in ("llm", "embeddings", "billing", "queries")}
    if beat:
        system.start_beat()
    return system, workers


@pytest.fixture(scope="module")
def stack_a(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Any) -> Iterator[tuple[Stack, dict]]:
    system, workers = start(embedding_env(stack_env, fake_llm, "fake-embed-a"), log_dir)
    yield system, workers
    system.stop()


@pytest.fixture(scope="module")
def stack_b(
    stack_a: tuple[Stack, dict], stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Any
) -> Iterator[tuple[Stack, dict]]:
    stack_a[0].stop()  # its workers would still index with the old model
    system, workers = start(embedding_env(stack_env, fake_llm, "fake-embed-b"), log_dir, beat=True)
    yield system, workers
    system.stop()


@pytest.fixture
async def http_a(stack_a: tuple[Stack, dict]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack_a[0].base_url, timeout=30) as client:
        yield client


@pytest.fixture
async def http_b(stack_b: tuple[Stack, dict]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack_b[0].base_url, timeout=30) as client:
        yield client


_DATABASE_URL: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def remember_database(database_url: str) -> None:
    _DATABASE_URL[:] = [database_url]


def scalar(statement: str, *params: Any) -> Any:
    return sql(_DATABASE_URL[0], statement, *params)[0][0]


async def wait_ready(ids: list[str], model: str, timeout: float = 60) -> None:
    def ready() -> bool:
        return scalar(
            "SELECT count(*) FROM documents"
            " WHERE id = ANY(%s::uuid[]) AND status = 'ready' AND embedding_model = %s",
            ids,
            model,
        ) == len(ids)

    await asyncio.to_thread(eventually, ready, timeout, f"documents ready with {model}")


def settled(database_url: str, key_prefix: str) -> bool:
    return bool(
        sql(database_url, "SELECT 1 FROM transactions WHERE idempotency_key LIKE %s", key_prefix + "%")
    )


def chunk_tokens(database_url: str, document_id: str) -> int:
    return int(scalar("SELECT sum(token_count) FROM chunks WHERE document_id = %s", document_id))


async def test_upload_is_held_then_charged_once_at_the_embedding_price(
    http_a: httpx.AsyncClient, stack_a: tuple[Stack, dict], world: World, database_url: str,
    stack_redis_url: str, log_dir: Any,
) -> None:  # fmt: skip
    system, workers = stack_a
    world.boss = await signup(http_a, "boss")
    make_admin(database_url, world.boss.user_id)
    r = await http_a.put("/api/admin/prices/fake-embed-a", json=MICRO_PER_TOKEN, headers=world.boss.headers)
    assert r.status_code == 200, r.text
    world.alice = alice = await signup(http_a, "alice")
    world.assistant_id = await new_assistant(http_a, alice, retrieval_min_score=0.0)

    workers.pop("billing").stop()  # settle tasks wait in the queue, to be delivered three times
    for name, paragraph in TOPICS.items():
        r = await http_a.post(
            f"/api/assistants/{world.assistant_id}/documents",
            files={"file": (name, document_text(paragraph))},
            headers=alice.headers,
        )
        assert r.status_code == 202, r.text
        world.documents[name] = r.json()["id"]
    ids = list(world.documents.values())
    await wait_ready(ids, "fake-embed-a")
    held = scalar("SELECT held_micros FROM balances WHERE user_id = %s", alice.user_id)
    assert held > 0, "each upload holds its estimated cost until the billing worker settles it"
    for document_id in ids:
        for _ in range(2):
            send_task(stack_redis_url, TASKS.settle_indexing, document_id, None)
    workers["billing"] = system.start_worker("billing")
    for document_id in ids:
        await asyncio.to_thread(
            eventually,
            lambda d=document_id: settled(database_url, f"embed-release:{d}:upload"),
            30,
            "settlement",
        )
    await asyncio.to_thread(
        eventually, lambda: workers["billing"].log_text().count("succeeded") >= 9, 30, "three deliveries each"
    )
    for document_id in ids:
        entries = entries_for(database_url, document_id)
        assert [kind for kind, _ in entries] == ["hold", "charge", "release"], entries
        (_, hold), (_, charge), (_, release) = entries
        tokens = chunk_tokens(database_url, document_id)
        assert charge == -tokens and release == -hold and hold >= tokens, (entries, tokens)
        world.chunk_counts[document_id] = scalar(
            "SELECT count(*) FROM chunks WHERE document_id = %s", document_id
        )
    money, held_sum = ledger_sums(database_url, alice.user_id)
    balance = sql(
        database_url, "SELECT balance_micros, held_micros FROM balances WHERE user_id = %s", alice.user_id
    )
    assert balance[0] == (money, held_sum) and held_sum == 0
    usage = sql(database_url, "SELECT count(*), sum(cost_micros) FROM usage_records WHERE kind = 'embedding'")
    assert usage[0][0] == 3 and usage[0][1] == sum(chunk_tokens(database_url, d) for d in ids)


async def test_an_upload_the_balance_cannot_cover_is_refused(
    http_a: httpx.AsyncClient, world: World, database_url: str
) -> None:
    assert world.boss is not None
    bob = await signup(http_a, "bob")
    assistant_id = await new_assistant(http_a, bob)
    pricey = {"input_micros_per_mtok": 10**12, "output_micros_per_mtok": 0}  # a unit per token
    r = await http_a.put("/api/admin/prices/fake-embed-a", json=pricey, headers=world.boss.headers)
    assert r.status_code == 200
    try:
        r = await http_a.post(
            f"/api/assistants/{assistant_id}/documents",
            files={"file": ("big.txt", document_text(TOPICS["refunds.txt"]))},
            headers=bob.headers,
        )
    finally:
        await http_a.put("/api/admin/prices/fake-embed-a", json=MICRO_PER_TOKEN, headers=world.boss.headers)
    assert r.status_code == 402 and r.json()["error"]["code"] == "insufficient_balance", r.text
    r = await http_a.get(f"/api/assistants/{assistant_id}/documents", headers=bob.headers)
    assert r.json()["items"] == []
    assert scalar("SELECT count(*) FROM transactions WHERE owner_id = %s", bob.user_id) == 1  # signup credit


async def test_reindex_after_a_model_change_swaps_each_document_without_downtime(
    http_b: httpx.AsyncClient, world: World, database_url: str, fake_llm: FakeLLM
) -> None:
    boss, alice = world.boss, world.alice
    assert boss is not None and alice is not None
    r = await http_b.put("/api/admin/prices/fake-embed-b", json=MICRO_PER_TOKEN, headers=boss.headers)
    assert r.status_code == 200
    r = await http_b.post("/api/admin/reindex", json={}, headers=alice.headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = await http_b.post(
        "/api/admin/reindex", json={"assistant_id": str(uuid.uuid4())}, headers=boss.headers
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    old_chunks = {row[0] for row in sql(database_url, "SELECT id FROM chunks")}
    refunds = world.documents["refunds.txt"]
    ids = list(world.documents.values())

    fake_llm.configure(embedding_delay_ms=250)  # each batch is slow: searches overlap the re-index
    try:
        r = await http_b.post("/api/admin/reindex", json={}, headers=boss.headers)
        assert r.status_code == 202, r.text
        run = r.json()
        assert run["documents"] == 3 and run["model"] == "fake-embed-b"
        seen_in_progress, searches = set(), 0
        async with asyncio.timeout(90):
            while True:
                rows = sql(
                    database_url,
                    """SELECT d.id::text, d.status::text, count(c.id), count(DISTINCT c.embedding_model),
                              min(c.embedding_model)
                       FROM documents d LEFT JOIN chunks c ON c.document_id = d.id
                       WHERE d.id = ANY(%s::uuid[]) GROUP BY d.id, d.status""",
                    ids,
                )
                in_progress = [row for row in rows if row[1] in ("queued", "parsing", "embedding")]
                assert len(in_progress) <= 1, f"one document at a time: {rows}"
                for doc_id, _, count, models, _ in rows:
                    # Old chunks or new chunks, never both, never none.
                    assert count == world.chunk_counts[doc_id] and models == 1, rows
                seen_in_progress |= {row[0] for row in in_progress}
                r = await http_b.post(
                    f"/api/assistants/{world.assistant_id}/search",
                    json={"query": "refund money back payment card"},
                    headers=alice.headers,
                )
                assert r.status_code == 200 and r.json()["items"], r.text
                assert r.json()["items"][0]["document_id"] == refunds
                searches += 1
                if all(row[1] == "ready" and row[4] == "fake-embed-b" for row in rows):
                    break
    finally:
        fake_llm.configure(embedding_delay_ms=0)
    assert seen_in_progress == set(ids), "searches ran while each document was being re-indexed"
    new_chunks = {row[0] for row in sql(database_url, "SELECT id FROM chunks")}
    assert not new_chunks & old_chunks
    assert sql(database_url, "SELECT DISTINCT attempt FROM documents WHERE id = ANY(%s::uuid[])", ids) == [
        (2,)
    ]

    r = await http_b.get(f"/api/admin/reindex/{run['run_id']}", headers=boss.headers)
    assert r.json() == {"run_id": run["run_id"], "waiting": 0, "indexing": 0, "ready": 3, "failed": 0}
    for document_id in ids:  # each document charged once for this run, at the new model's price
        key = f"embed-release:{document_id}:{run['run_id']}"
        await asyncio.to_thread(eventually, lambda k=key: settled(database_url, k), 30, "settlement")
        entries = entries_for(database_url, document_id)
        assert [kind for kind, _ in entries] == ["hold", "charge", "release"] * 2, entries
        assert entries[4][1] == -chunk_tokens(database_url, document_id)
    r = await http_b.post("/api/admin/reindex", json={}, headers=boss.headers)
    assert r.status_code == 202 and r.json()["documents"] == 0, "every document already has the model"
    r = await http_b.get("/api/admin/audit", headers=boss.headers)
    assert any(e["action"] == "reindex_started" and e["subject"] == run["run_id"] for e in r.json()["items"])


async def test_cli_reindexes_an_assistant(
    http_b: httpx.AsyncClient, stack_b: tuple[Stack, dict], world: World, database_url: str
) -> None:
    env = {**stack_b[0].env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    argv = [sys.executable, "-m", "cli.main", "reindex", "--assistant", world.assistant_id, "--all", "--wait"]
    result = await asyncio.to_thread(
        subprocess.run, argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "re-indexing 3 document(s) with fake-embed-b" in result.stdout
    assert "waiting 0, indexing 0, ready 3, failed 0" in result.stdout
    ids = list(world.documents.values())
    assert sql(database_url, "SELECT DISTINCT attempt FROM documents WHERE id = ANY(%s::uuid[])", ids) == [
        (3,)
    ]
    r = await http_b.post("/api/admin/reindex", json={"assistant_id": "nope"}, headers=world.boss.headers)  # type: ignore[union-attr]
    assert r.status_code == 422


async def test_a_run_whose_chain_was_lost_is_resumed_by_the_reaper(
    http_b: httpx.AsyncClient, world: World, database_url: str
) -> None:
    ids = list(world.documents.values())
    run_id = str(uuid.uuid4())
    # A run whose reindex_next task never arrived, marked a while ago.
    sql(
        database_url,
        "UPDATE documents SET reindex_run_id = %s, updated_at = now() - interval '1 hour'"
        " WHERE id = ANY(%s::uuid[])",
        run_id,
        ids,
    )

    def finished() -> bool:
        return (
            scalar("SELECT count(*) FROM documents WHERE index_run_id = %s AND status = 'ready'", run_id) == 3
        )

    await asyncio.to_thread(eventually, finished, 60, "the reaper to resume the run")
    assert sql(database_url, "SELECT DISTINCT attempt FROM documents WHERE id = ANY(%s::uuid[])", ids) == [
        (4,)
    ]
