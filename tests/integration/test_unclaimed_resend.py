"""A reply whose task was lost before any worker claimed it (gone with the broker's data, or dropped by a
worker that lost its broker) is sent again by beat's reaper after ``unclaimed_resend_seconds``, long
before the queued silence of ten silence periods. When the lost task turns up after all, the claim lets
it do nothing: one reply, one model call, one charge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.fixtures.api import WsClient, new_dialog, poll_reply, post_message, signup
from tests.fixtures.billing import entries_for, ledger_sums
from tests.fixtures.processes import eventually
from tests.fixtures.stack import FakeLLM, Stack, running_stack

SILENCE_SECONDS = 30  # the queued silence is ten times this: five minutes
UNCLAIMED_RESEND_SECONDS = 3
# kombu's Redis transport keeps a queue as one list per priority step.
LLM_QUEUE_KEYS = ["llm", *(f"llm\x06\x16{step}" for step in (3, 6, 9))]


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Any) -> Iterator[Stack]:
    env = {
        **stack_env,
        **fake_llm.env,
        "CHATAI_REPLY_SILENCE_SECONDS": str(SILENCE_SECONDS),
        "CHATAI_UNCLAIMED_RESEND_SECONDS": str(UNCLAIMED_RESEND_SECONDS),
        "CHATAI_RECONCILE_ENABLED": "false",
    }
    # No llm worker yet: the accepted message's task waits in the queue, where the test can lose it.
    with running_stack(env, log_dir, workers=("billing",), beat=True) as system:
        yield system


def take_task(broker: redis.Redis, reply_id: str) -> tuple[str, bytes]:
    """Remove the reply's generate task from the llm queue, as a broker that lost its data would."""
    for key in LLM_QUEUE_KEYS:
        for payload in broker.lrange(key, 0, -1):
            if reply_id.encode() in payload and b"generate_reply" in payload:
                broker.lrem(key, 1, payload)
                return key, payload
    raise AssertionError(f"the task of {reply_id} is not in the llm queue")


async def test_a_lost_task_is_sent_again_soon_and_its_late_twin_does_nothing(
    http: httpx.AsyncClient, stack: Stack, database_url: str, stack_redis_url: str, fake_llm: FakeLLM
) -> None:
    user = await signup(http, "lost-task")
    _, dialog_id = await new_dialog(http, user)
    broker = redis.Redis.from_url(stack_redis_url)
    prompt = "lost with the broker [[tokens:12]]"
    accepted_at = time.monotonic()
    reply_id = (await post_message(http, user, dialog_id, prompt))["reply"]["id"]
    key, lost = await asyncio.to_thread(
        eventually, lambda: _try_take(broker, reply_id), 10, "the task to be queued"
    )
    worker = stack.start_worker("llm")  # consumes the llm queue, where beat sends the reaper too
    done = await poll_reply(http, user, reply_id, timeout=60)
    took = time.monotonic() - accepted_at
    assert done["status"] == "completed", done
    assert took < SILENCE_SECONDS * 10 / 3, f"{took:.0f}s: no sooner than the queued silence"
    await asyncio.to_thread(worker.wait_for_log, "'resent': 1", 10)

    # The lost task is delivered after all: the claim finds the reply taken, and nothing changes.
    broker.lpush(key, lost)
    await asyncio.to_thread(worker.wait_for_log, "'skipped'", 30)
    await asyncio.sleep(UNCLAIMED_RESEND_SECONDS + 2)  # room for a wrong second resend to show
    async with WsClient(stack.ws_url, user.access_token) as ws:
        frames = await ws.subscribe(f"dialog:{dialog_id}", last_event_id="0")
    assert [f["type"] for f in frames if f["data"].get("reply_id") == reply_id].count("reply.completed") == 1
    resends = [ln for ln in worker.log_text().splitlines() if "succeeded" in ln and "'resent': 1" in ln]
    assert len(resends) == 1, "re-sent more than once"
    assert (await poll_reply(http, user, reply_id))["content"] == done["content"]
    asked = [r for r in fake_llm.chat_requests() if "lost with the broker" in str(r.get("messages"))]
    assert len(asked) == 1, "the model was asked twice"
    await asyncio.to_thread(
        eventually, lambda: len(entries_for(database_url, reply_id)) >= 2, 30, "the reply to be settled"
    )
    kinds = [kind for kind, _ in entries_for(database_url, reply_id)]
    assert kinds.count("charge") == 1 and kinds[0] == "hold", kinds
    assert ledger_sums(database_url, user.user_id)[1] == 0, "a hold is left"


def _try_take(broker: redis.Redis, reply_id: str) -> tuple[str, bytes] | None:
    try:
        return take_task(broker, reply_id)
    except AssertionError:
        return None
