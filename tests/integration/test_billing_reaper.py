"""A reply whose worker died and whose attempts are spent is failed ``worker_lost`` by the reaper, and its
hold is released by the billing worker: nothing charged, nothing left held."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.api import new_dialog, poll_reply, post_message, signup
from tests.fixtures.billing import balance_row, entries_for, ledger_sums
from tests.fixtures.processes import eventually, eventually_async
from tests.fixtures.stack import FakeLLM, Stack, running_stack


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Any) -> Iterator[Stack]:
    env = {
        **stack_env,
        **fake_llm.env,
        "CHATAI_REPLY_MAX_ATTEMPTS": "1",
        "CHATAI_RECONCILE_ENABLED": "false",
    }
    with running_stack(env, log_dir, workers=("billing",), beat=True) as system:
        yield system


async def test_reaped_reply_releases_its_hold(
    http: httpx.AsyncClient, stack: Stack, database_url: str
) -> None:
    user = await signup(http, "reaped")
    _, dialog_id = await new_dialog(http, user)
    before = balance_row(database_url, user.user_id)
    worker = stack.start_worker("llm")
    reply_id = (await post_message(http, user, dialog_id, "slow [[tokens:200]] [[delay_ms:50]]"))["reply"][
        "id"
    ]

    async def generating() -> bool:
        reply = (await http.get(f"/api/messages/{reply_id}", headers=user.headers)).json()
        return bool(reply["status"] == "generating")

    await eventually_async(generating, 20, "the reply to be generating")
    assert balance_row(database_url, user.user_id)[1] > 0  # held while it generates
    worker.kill()
    stack.start_worker("llm")  # the reaper runs on the llm queue
    done = await poll_reply(http, user, reply_id, timeout=60)
    assert done["status"] == "failed" and done["error"]["code"] == "worker_lost"

    def released() -> bool:
        return [k for k, _ in entries_for(database_url, reply_id)] == ["hold", "release"]

    await asyncio.to_thread(eventually, released, 30, "the hold to be released")
    assert balance_row(database_url, user.user_id) == before == ledger_sums(database_url, user.user_id)
