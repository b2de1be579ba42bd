"""A worker SIGKILLed mid-stream: the reaper hands the reply to another worker, clients see the full text
once, and a redelivered old task does nothing. When the attempts are spent the reply fails ``worker_lost``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from celery import Celery

from core.queues import TASKS
from tests.fixtures.api import WsClient, new_dialog, poll_reply, post_message, reply_text, signup
from tests.fixtures.stack import FakeLLM, Stack, running_stack


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: object) -> Iterator[Stack]:
    env = {
        **stack_env,
        **fake_llm.env,
        "CHATAI_REPLY_MAX_ATTEMPTS": "2",
    }
    with running_stack(env, log_dir, workers=(), beat=True) as system:  # type: ignore[arg-type]
        yield system


async def deltas_seen(ws: WsClient, reply_id: str, count: int) -> None:
    seen = 0
    while seen < count:
        frame = await ws.recv(timeout=30)
        if frame.get("type") == "reply.delta" and frame["data"]["reply_id"] == reply_id:
            seen += 1


async def test_killed_worker_is_replaced_without_duplicated_text(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    user = await signup(http, "survivor")
    _, dialog_id = await new_dialog(http, user)
    first = stack.start_worker("llm")
    async with WsClient(stack.ws_url, user.access_token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        posted = await post_message(http, user, dialog_id, "survive this [[tokens:80]] [[delay_ms:40]]")
        reply_id = posted["reply"]["id"]
        await deltas_seen(ws, reply_id, 5)
        first.kill()
        second = stack.start_worker("llm")
        frames = await ws.until("reply.completed", reply_id, timeout=60)

    completed = frames[-1]["data"]
    assert reply_text(ws.frames, reply_id) == completed["content"]
    assert len(completed["content"].split()) == 80
    done = await poll_reply(http, user, reply_id)
    assert done["status"] == "completed" and done["content"] == completed["content"]

    # Every event of the dialog, replayed from the start: one completion, and the deltas spell the text once.
    async with WsClient(stack.ws_url, user.access_token) as ws:
        replayed = await ws.subscribe(f"dialog:{dialog_id}", last_event_id="0")
    assert [f["type"] for f in replayed].count("reply.completed") == 1
    assert reply_text(replayed, reply_id) == completed["content"]

    # The dead worker's message, delivered again (on the stack's broker), finds a newer attempt and does
    # nothing: the worker reports it skipped.
    sender = Celery(broker=stack.env["REDIS_URL"])
    redelivered = sender.send_task(TASKS.generate_reply, args=[reply_id, 1], queue="llm")
    sender.close()
    second.wait_for_log(f"{redelivered.id}] succeeded", timeout=30)
    (line,) = [entry for entry in second.log_text().splitlines() if f"{redelivered.id}] succeeded" in entry]
    assert "skipped" in line
    async with WsClient(stack.ws_url, user.access_token) as ws:
        replayed = await ws.subscribe(f"dialog:{dialog_id}", last_event_id="0")
    assert [f["type"] for f in replayed if f["data"].get("reply_id") == reply_id].count(
        "reply.completed"
    ) == 1
    assert (await poll_reply(http, user, reply_id))["content"] == completed["content"]


async def test_reply_fails_worker_lost_when_attempts_are_spent(http: httpx.AsyncClient, stack: Stack) -> None:
    for child in stack.children:
        if child.name.startswith("worker-"):
            child.stop()
    user = await signup(http, "unlucky")
    _, dialog_id = await new_dialog(http, user)
    async with WsClient(stack.ws_url, user.access_token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        worker = stack.start_worker("llm")
        posted = await post_message(http, user, dialog_id, "doomed [[tokens:200]] [[delay_ms:40]]")
        reply_id = posted["reply"]["id"]
        for _ in range(2):  # attempt 1, then attempt 2, each killed mid-stream
            await deltas_seen(ws, reply_id, 3)
            worker.kill()
            worker = stack.start_worker("llm")
        frames = await ws.until("reply.failed", reply_id, timeout=60)
    assert frames[-1]["data"]["error"]["code"] == "worker_lost"
    done = await poll_reply(http, user, reply_id)
    assert done["status"] == "failed" and done["error"]["code"] == "worker_lost"
