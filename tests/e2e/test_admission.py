"""Admission control: with more replies waiting in the ``llm`` queue than the API admits, a new message is
refused at once with 503 ``unavailable`` and ``Retry-After``, leaving nothing written; once the queue
drains, messages are accepted again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.api import new_dialog, poll_reply, post_message, signup
from tests.fixtures.billing import sql
from tests.fixtures.stack import FakeLLM, Stack, running_stack

QUEUED_LIMIT = 3


@pytest.fixture(scope="module")
def admission_stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Path) -> Iterator[Stack]:
    env = {
        **stack_env,
        **fake_llm.env,
        "CHATAI_ADMISSION_MAX_QUEUED_REPLIES": str(QUEUED_LIMIT),
        "CHATAI_ADMISSION_BACKLOG_TTL_SECONDS": "0",  # every POST reads the queue: no stale figure
    }
    # No worker at first: every accepted reply stays in the queue.
    with running_stack(env, log_dir, workers=()) as system:
        yield system


@pytest.fixture
async def http(admission_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=admission_stack.base_url, timeout=30) as client:
        yield client


def rows(database_url: str, dialog_id: str) -> tuple[int, int]:
    """(messages of the dialog, ledger entries of its owner's holds)."""
    ((messages,),) = sql(database_url, "SELECT count(*) FROM messages WHERE dialog_id = %s", dialog_id)
    ((holds,),) = sql(
        database_url,
        "SELECT count(*) FROM transactions WHERE kind = 'hold' AND reference IN"
        " (SELECT id::text FROM messages WHERE dialog_id = %s)",
        dialog_id,
    )
    return int(messages), int(holds)


async def test_a_full_queue_refuses_new_messages_until_it_drains(
    http: httpx.AsyncClient, admission_stack: Stack, database_url: str
) -> None:
    user = await signup(http, "admission")
    _, dialog_id = await new_dialog(http, user)
    for i in range(QUEUED_LIMIT):
        await post_message(http, user, dialog_id, f"question {i}")
    before = rows(database_url, dialog_id)
    assert before == (2 * QUEUED_LIMIT, QUEUED_LIMIT)

    url = f"/api/dialogs/{dialog_id}/messages"
    r = await http.post(url, json={"content": "one too many"}, headers=user.headers)
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    error = r.json()["error"]
    assert error["code"] == "unavailable"
    assert error["details"]["reason"] == "queue_full"
    assert error["details"]["queued"] >= QUEUED_LIMIT
    assert rows(database_url, dialog_id) == before  # nothing half-written: no message, no hold

    admission_stack.start_worker("llm")
    last = (await http.get(f"{url}?limit=100", headers=user.headers)).json()["items"][-1]
    await poll_reply(http, user, last["id"])
    accepted = await post_message(http, user, dialog_id, "now there is room")
    assert (await poll_reply(http, user, accepted["reply"]["id"]))["status"] == "completed"
