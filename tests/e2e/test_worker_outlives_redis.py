"""The llm worker outlives its broker: Redis (broker and events) killed and started again while replies
are being generated, the same worker process reconnects and goes on consuming."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.api import new_dialog, poll_reply, signup
from tests.fixtures.processes import eventually
from tests.fixtures.redis_server import RedisServer, stack_on_own_redis
from tests.fixtures.stack import Stack

SLOW = "[[tokens:40]] [[delay_ms:100]] tell me a long story"


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, database_url: str, log_dir: Path) -> Iterator[Stack]:
    with stack_on_own_redis(redis_server, database_url, log_dir) as system:
        yield system


async def test_the_llm_worker_consumes_again_after_redis_restarts(
    http: httpx.AsyncClient, stack: Stack, redis_server: RedisServer
) -> None:
    user = await signup(http, "outlives")
    _, dialog_id = await new_dialog(http, user)
    url = f"/api/dialogs/{dialog_id}/messages"
    r = await http.post(url, json={"content": SLOW}, headers=user.headers)
    assert r.status_code == 202, r.text
    in_flight = r.json()["reply"]["id"]

    async def generating() -> bool:
        reply = await http.get(f"/api/messages/{in_flight}", headers=user.headers)
        return reply.json()["status"] == "generating"

    async with asyncio.timeout(60):
        while not await generating():  # noqa: ASYNC110 (polls the API)
            await asyncio.sleep(0.1)
    (worker,) = [c for c in stack.children if c.name.startswith("worker-llm")]
    redis_server.stop()
    eventually(lambda: "Connection to broker lost" in worker.log_text(), 30, "the worker to notice")
    redis_server.start()
    eventually(lambda: worker.log_text().count("Connected to ") >= 2, 60, "the worker to reconnect")
    assert worker.proc.poll() is None, "the worker process itself stayed up"

    r = await http.post(url, json={"content": "and now?"}, headers=user.headers)
    assert r.status_code == 202, r.text
    done = await poll_reply(http, user, r.json()["reply"]["id"], timeout=60)
    assert done["status"] == "completed", done
    assert worker.proc.poll() is None
