"""Redis or Postgres going down under a running system: requests answer 503 and write nothing, and the
system recovers on its own when the dependency comes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from core.embedded_db import ensure_server, sqlalchemy_url, stop_server
from tests.fixtures.api import new_dialog, poll_reply, signup
from tests.fixtures.database import migrate
from tests.fixtures.processes import ROOT, eventually
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.stack import FakeLLM, Stack, base_env, running_stack


class PostgresServer:
    def __init__(self) -> None:
        self.pgdata = ROOT / ".data" / "test-postgres-outage"

    def start(self) -> str:
        libpq = ensure_server(self.pgdata)
        with psycopg.connect(libpq, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'outage'").fetchone():
                conn.execute("CREATE DATABASE outage")
        return sqlalchemy_url(libpq, "outage")

    def stop(self) -> None:
        stop_server(self.pgdata)


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[tuple[PostgresServer, str]]:
    server = PostgresServer()
    url = server.start()
    migrate(url)
    yield server, url
    server.stop()


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer, postgres_server: tuple[PostgresServer, str], log_dir: Path
) -> Iterator[Stack]:
    env = base_env(postgres_server[1], redis_server.url, log_dir)
    llm = FakeLLM(log_dir, env)
    try:
        with running_stack({**env, **llm.env}, log_dir) as system:
            yield system
    finally:
        llm.stop()


def wait_until_ready(base_url: str) -> None:
    eventually(lambda: httpx.get(f"{base_url.rstrip('/')}/health/ready").status_code == 200, 30, "readiness")


async def message_count(http: httpx.AsyncClient, headers: dict[str, str], dialog_id: str) -> int:
    r = await http.get(f"/api/dialogs/{dialog_id}/messages", headers=headers)
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


async def test_redis_down_answers_503_and_writes_nothing(
    http: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    user = await signup(http, "redis-outage")
    _, dialog_id = await new_dialog(http, user)
    url = f"/api/dialogs/{dialog_id}/messages"
    redis_server.stop()
    try:
        r = await http.post(url, json={"content": "are you there?"}, headers=user.headers)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable"
        ready = await http.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"
        assert await message_count(http, user.headers, dialog_id) == 0
    finally:
        redis_server.start()
    # Back up: the same request now goes through and is answered.
    wait_until_ready(str(http.base_url))
    r = await http.post(url, json={"content": "are you there?"}, headers=user.headers)
    assert r.status_code == 202, r.text
    done = await poll_reply(http, user, r.json()["reply"]["id"], timeout=60)
    assert done["status"] == "completed"


async def test_postgres_down_answers_503(
    http: httpx.AsyncClient, postgres_server: tuple[PostgresServer, str]
) -> None:
    user = await signup(http, "pg-outage")
    server, _ = postgres_server
    server.stop()
    try:
        r = await http.post("/api/assistants", json={"name": "never"}, headers=user.headers)
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
        assert "psycopg" not in r.text and "SELECT" not in r.text
        ready = await http.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["postgres"] != "ok"
    finally:
        server.start()
    wait_until_ready(str(http.base_url))
    r = await http.get("/api/assistants", headers=user.headers)
    assert r.status_code == 200 and r.json()["items"] == []
