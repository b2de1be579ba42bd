"""Long polling: bots without a webhook are polled by the bot pool, each by exactly one pool process, and a
killed process's bots are taken over. Real API, telegram and llm workers, two pool processes, the fake
Bot API (which counts overlapping getUpdates calls for one bot as conflicts) and the fake LLM."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from services.telegram.polling import lease_key
from tests.fixtures.fake_telegram import FakeTelegram
from tests.fixtures.processes import Child, eventually, python_argv
from tests.fixtures.stack import FakeLLM, Stack, running_stack
from tests.fixtures.telegram import ConnectedBot, connect_bot, text_update, wait_sent

LEASE_SECONDS = 2


@pytest.fixture(scope="module")
def poll_env(stack_env: dict[str, str], fake_llm: FakeLLM, fake_telegram: FakeTelegram) -> dict[str, str]:
    return {
        **stack_env,
        **fake_llm.env,
        **fake_telegram.env,
        "CHATAI_TELEGRAM_WEBHOOKS": "false",
        "CHATAI_TELEGRAM_POLL_LEASE_SECONDS": str(LEASE_SECONDS),
        "CHATAI_TELEGRAM_POLL_TIMEOUT_SECONDS": "2",
        "CHATAI_TELEGRAM_CONCURRENCY": "20",
    }


@pytest.fixture(scope="module")
def stack(poll_env: dict[str, str], log_dir: Any) -> Iterator[Stack]:
    with running_stack(poll_env, log_dir, workers=("llm", "telegram")) as system:
        yield system


def start_poller(stack: Stack, name: str) -> Child:
    child = stack._spawn(name, python_argv("-m", "workers.telegram_poller"))
    child.wait_for_log("started", timeout=30)
    return child


def owners(client: redis.Redis, bots: list[ConnectedBot]) -> dict[str, str | None]:
    values = client.mget([lease_key(b.id) for b in bots])
    return {b.id: v.decode() if v else None for b, v in zip(bots, values, strict=True)}


async def test_each_bot_is_polled_by_exactly_one_pool_process_and_taken_over(
    http: httpx.AsyncClient, stack: Stack, fake_telegram: FakeTelegram, stack_redis_url: str
) -> None:
    bots = [await connect_bot(http, fake_telegram) for _ in range(4)]
    for bot in bots:
        r = await http.get(f"/api/bots/{bot.id}", headers=bot.owner.headers)
        assert r.json()["webhook_url"] is None
        assert fake_telegram.bot(bot.token)["webhook"] == {}
    first, second = start_poller(stack, "poller-1"), start_poller(stack, "poller-2")
    client = redis.Redis.from_url(stack_redis_url)

    def shared_out() -> dict[str, str | None] | None:
        held = owners(client, bots)
        counts = collections.Counter(held.values())
        return held if None not in counts and sorted(counts.values()) == [2, 2] else None

    await asyncio.to_thread(eventually, shared_out, 30, "the four bots to be shared out two and two")
    for i, bot in enumerate(bots):
        fake_telegram.push_updates(bot.token, [text_update(600 + i, f"polled{i}")])
    for i, bot in enumerate(bots):
        assert (await wait_sent(fake_telegram, bot, 600 + i, 1))[0].startswith(f"Echo: polled{i}")

    first.kill()
    # Updates arriving while the dead process still holds its leases are picked up after the takeover.
    for i, bot in enumerate(bots):
        fake_telegram.push_updates(bot.token, [text_update(600 + i, f"after{i}")])
    for i, bot in enumerate(bots):
        texts = await wait_sent(fake_telegram, bot, 600 + i, 2, timeout=30)
        assert [t.split()[1] for t in texts] == [f"polled{i}", f"after{i}"], "each update answered once"
    survivor = second.log_text()
    held = owners(client, bots)
    assert len(set(held.values())) == 1 and None not in held.values()
    assert all(f"polls bot {b.id}" in survivor for b in bots)
    assert fake_telegram.counters().get("poll_conflicts", 0) == 0, "two processes polled one bot at once"
