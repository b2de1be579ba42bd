"""The send limiter on real Redis: every window counted together, waits that end when a slot frees, and a
bot's pause that holds only that bot."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from core.settings import get_settings
from services.telegram.limits import SendLimiter
from tests.conftest import REDIS_BASE, STACK_REDIS_DB


@pytest.fixture
async def limiter() -> AsyncIterator[SendLimiter]:
    client = aioredis.Redis.from_url(f"{REDIS_BASE}/{STACK_REDIS_DB}")
    yield SendLimiter(client)
    await client.aclose()


async def test_one_message_per_second_per_chat(limiter: SendLimiter) -> None:
    bot = uuid.uuid4()
    assert await limiter.acquire(bot, 1) == 0
    wait = await limiter.acquire(bot, 1)
    assert 1.15 < wait <= 1.26  # the chat interval and its margin
    assert await limiter.acquire(bot, 2) == 0, "another chat of the bot is not held back"


async def test_thirty_per_second_per_bot_and_a_refused_message_counts_nowhere(limiter: SendLimiter) -> None:
    bot = uuid.uuid4()
    started = time.monotonic()
    assert [await limiter.acquire(bot, chat) for chat in range(1, 31)] == [0] * 30
    wait = await limiter.acquire(bot, 31)
    # The window began at the first message; what has passed since (give or take scheduling) is off it.
    assert 0 < wait <= 1.06 - (time.monotonic() - started) + 0.15
    await asyncio.sleep(wait)
    # Chat 31's refused attempt did not use its own slot: it may send as soon as the bot may.
    assert await limiter.acquire(bot, 31) == 0


async def test_sends_waiting_on_a_busy_bot_come_back_one_slot_apart_in_line(limiter: SendLimiter) -> None:
    bot = uuid.uuid4()
    assert [await limiter.acquire(bot, chat) for chat in range(1, 31)] == [0] * 30
    waits = [await limiter.acquire(bot, 100 + i, f"send-{i}") for i in range(5)]
    spacing = 1.05 / 30
    for earlier, later in itertools.pairwise(waits):
        assert later - earlier == pytest.approx(spacing, abs=0.01)
    again = await limiter.acquire(bot, 103, "send-3")
    assert again == pytest.approx(waits[3], abs=0.02), "a sender keeps its place in line"
    await asyncio.sleep(waits[0])
    assert await limiter.acquire(bot, 100, "send-0") == 0


async def test_twenty_per_minute_per_group(limiter: SendLimiter, monkeypatch: pytest.MonkeyPatch) -> None:
    # A short chat interval, so the twenty messages go quickly and the group's minute is what binds.
    monkeypatch.setenv("CHATAI_TELEGRAM_CHAT_INTERVAL_SECONDS", "0.01")
    monkeypatch.setenv("CHATAI_TELEGRAM_LIMIT_MARGIN_SECONDS", "0")
    get_settings.cache_clear()
    try:
        bot, group = uuid.uuid4(), -1001
        started, granted = time.monotonic(), 0
        while granted < 20:
            wait = await limiter.acquire(bot, group)
            if wait:
                assert wait <= 0.07
                await asyncio.sleep(wait)
            else:
                granted += 1
        wait = await limiter.acquire(bot, group)
        assert abs(wait - (60.0 - (time.monotonic() - started))) < 1.5
        assert await limiter.acquire(bot, 5) == 0, "a private chat of the bot is not held back"
    finally:
        get_settings.cache_clear()


async def test_a_pause_holds_only_that_bot(limiter: SendLimiter) -> None:
    paused, other = uuid.uuid4(), uuid.uuid4()
    await limiter.pause(paused, 5)
    assert 4.5 < await limiter.acquire(paused, 1) <= 5
    assert await limiter.acquire(other, 1) == 0
