"""Shared fixtures: the embedded Postgres, a Redis db, and the system started as real processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.fixtures.database import DatabaseFactory
from tests.fixtures.fake_telegram import FakeTelegram
from tests.fixtures.processes import ARTIFACTS
from tests.fixtures.stack import TEST_JWT_SECRET, FakeLLM, Stack, base_env, running_stack

# Fixtures any module may use: hand-written SQL (`pg`, `pg_other`, `orm`), a Redis of a test's own.
pytest_plugins = ["tests.fixtures.browser", "tests.fixtures.queries", "tests.fixtures.redis_server"]

REDIS_BASE = os.environ.get("CHATAI_TEST_REDIS", "redis://127.0.0.1:6379")
# Separate db numbers let several test runs share one Redis without flushing each other.
STACK_REDIS_DB = int(os.environ.get("CHATAI_TEST_REDIS_DB", "1"))

# The test process itself reads settings too (token helpers, direct DB checks).
os.environ.setdefault("CHATAI_ENV", "test")
os.environ.setdefault("CHATAI_JWT_SECRET", TEST_JWT_SECRET)


LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = next((part for part in item.path.parts if part in LAYERS), None)
        if layer is not None:
            item.add_marker(layer)


@pytest.fixture(scope="session")
def databases() -> Iterator[DatabaseFactory]:
    dbs = DatabaseFactory()
    dbs.build_template()
    yield dbs
    dbs.drop(dbs.template)


@pytest.fixture(scope="module")
def database_url(databases: DatabaseFactory) -> Iterator[str]:
    name = databases.create_from_template()
    yield databases.url(name)
    databases.drop(name)


@pytest.fixture(scope="module")
def stack_redis_url() -> str:
    url = f"{REDIS_BASE}/{STACK_REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def log_dir(request: pytest.FixtureRequest) -> Path:
    path = ARTIFACTS / request.module.__name__.rsplit(".", 1)[-1]
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.log"):
        old.unlink()
    return path


@pytest.fixture(scope="module")
def stack_env(database_url: str, stack_redis_url: str, log_dir: Path) -> dict[str, str]:
    return base_env(database_url, stack_redis_url, log_dir)


@pytest.fixture(scope="module")
def fake_telegram(stack_env: dict[str, str], log_dir: Path) -> Iterator[FakeTelegram]:
    server = FakeTelegram(log_dir, stack_env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_llm(stack_env: dict[str, str], log_dir: Path) -> Iterator[FakeLLM]:
    server = FakeLLM(log_dir, stack_env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Path) -> Iterator[Stack]:
    """API + one llm worker, with the OpenAI-compatible provider pointed at the fake LLM."""
    env = {
        **stack_env,
        **fake_llm.env,
    }
    with running_stack(env, log_dir) as system:
        yield system


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the module's stack: this file's default one, or the ``stack`` a module defines."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> httpx.AsyncClient:
    return http
