"""Searches waiting for their query embeddings hold no pooled database connection: with more searches in
flight than the API's pool has connections, other requests are still answered at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from core.queues import TASKS, queue_for
from tests.fixtures.api import signup
from tests.fixtures.billing import sql
from tests.fixtures.stack import Stack, running_stack

POOL_SIZE = 3
SEARCHES = 4 * POOL_SIZE


@pytest.fixture(scope="module")
def pool_stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_DB_POOL_SIZE": str(POOL_SIZE),
        "CHATAI_DB_MAX_OVERFLOW": "0",
        "CHATAI_DB_POOL_TIMEOUT_SECONDS": "3",
        "CHATAI_QUERY_EMBEDDING_TIMEOUT_SECONDS": "8",
    }
    # No worker embeds queries: every search waits out its embedding timeout.
    with running_stack(env, log_dir, workers=()) as system:  # type: ignore[arg-type]
        yield system


@pytest.fixture
async def http(pool_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pool_stack.base_url, timeout=30) as client:
        yield client


def add_chunk(database_url: str, owner_id: str, assistant_id: str) -> None:
    """One indexed passage, written directly, so searches of this assistant need a query embedding."""
    ((document_id,),) = sql(
        database_url,
        "INSERT INTO documents (id, owner_id, assistant_id, filename, content_type, size_bytes, storage_key,"
        " status, progress, chunk_count, attempt, updated_at) VALUES (gen_random_uuid(), %s, %s, 'a.txt',"
        " 'txt', 5, 'k', 'ready', 1, 1, 1, now()) RETURNING id::text",
        owner_id, assistant_id,
    )  # fmt: skip
    sql(
        database_url,
        "INSERT INTO chunks (id, owner_id, assistant_id, document_id, position, text, token_count,"
        " embedding_model, embedding) VALUES (gen_random_uuid(), %s, %s, %s, 0, 'refunds', 1, 'm', %s)",
        owner_id, assistant_id, document_id, "[" + ",".join(["0.05"] * 384) + "]",
    )  # fmt: skip


async def queued_embeddings_reach(broker: redis.Redis, count: int, timeout: float) -> None:
    queue = queue_for(TASKS.embed_query)
    deadline = asyncio.get_running_loop().time() + timeout
    while broker.llen(queue) < count:
        assert asyncio.get_running_loop().time() < deadline, f"fewer than {count} queued embeddings"
        await asyncio.sleep(0.05)


async def test_waiting_searches_leave_the_pool_to_other_requests(
    http: httpx.AsyncClient, pool_stack: Stack, database_url: str
) -> None:
    owner = await signup(http, "searcher")
    r = await http.post("/api/assistants", json={"name": "Docs"}, headers=owner.headers)
    assistant_id = r.json()["id"]
    add_chunk(database_url, owner.user_id, assistant_id)
    broker = redis.Redis.from_url(pool_stack.env["REDIS_URL"])
    broker.delete(queue_for(TASKS.embed_query))

    url = f"/api/assistants/{assistant_id}/search"
    searches = [
        asyncio.create_task(http.post(url, json={"query": "refunds"}, headers=owner.headers))
        for _ in range(SEARCHES)
    ]
    await queued_embeddings_reach(broker, POOL_SIZE, timeout=10)
    # More searches wait than the pool has connections, and the API still answers at once.
    for _ in range(POOL_SIZE + 1):
        r = await http.get("/api/users/me", headers=owner.headers, timeout=2)
        assert r.status_code == 200, r.text
    r = await http.post("/api/assistants", json={"name": "More"}, headers=owner.headers, timeout=2)
    assert r.status_code == 201, r.text
    await queued_embeddings_reach(broker, SEARCHES, timeout=10)

    answers = await asyncio.gather(*searches)
    # Each waited out the embedding (no worker), none the pool.
    assert {(a.status_code, a.json()["error"]["code"]) for a in answers} == {(503, "unavailable")}
    assert all("No worker answered" in a.json()["error"]["message"] for a in answers)
