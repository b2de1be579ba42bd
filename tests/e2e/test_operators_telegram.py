"""An operator answering a Telegram dialog: real API, llm and telegram workers, the fake Bot API and LLM."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.api import assign_operator, signup
from tests.fixtures.database import sql
from tests.fixtures.fake_telegram import FakeTelegram
from tests.fixtures.processes import eventually
from tests.fixtures.stack import FakeLLM, Stack, running_stack
from tests.fixtures.telegram import connect_bot, deliver, text_update, wait_sent, webhook_stack_env

CHAT = 7001


@pytest.fixture(scope="module")
def stack(
    stack_env: dict[str, str], fake_llm: FakeLLM, fake_telegram: FakeTelegram, log_dir: Any
) -> Iterator[Stack]:
    env = webhook_stack_env(stack_env, fake_llm, fake_telegram)
    with running_stack(env, log_dir, workers=("llm", "telegram")) as system:
        yield system


def user_messages(database_url: str, dialog_id: str) -> int:
    (count,), *_ = sql(
        database_url, "SELECT count(*) FROM messages WHERE dialog_id = %s AND role = 'user'", dialog_id
    )
    return int(count)


async def test_the_operators_answer_reaches_the_telegram_chat_instead_of_the_assistants(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    assert (await deliver(http, bot, text_update(CHAT, "hello [[tokens:3]]"))).status_code == 200
    [first] = await wait_sent(fake_telegram, bot, CHAT, 1)
    assert "hello" in first
    (dialog_id,), *_ = sql(
        database_url, "SELECT dialog_id::text FROM telegram_chats WHERE bot_id = %s", bot.id
    )
    assistant_id = (await http.get(f"/api/bots/{bot.id}", headers=bot.owner.headers)).json()["assistant_id"]

    op = await signup(http, "operator")
    sql(database_url, "UPDATE users SET role = 'operator' WHERE id = %s", op.user_id)
    await assign_operator(http, bot.owner, assistant_id, op)
    assert (await http.post(f"/api/dialogs/{dialog_id}/takeover", headers=op.headers)).status_code == 200

    assert (await deliver(http, bot, text_update(CHAT, "a human please [[tokens:3]]"))).status_code == 200
    await asyncio.to_thread(
        eventually, lambda: user_messages(database_url, dialog_id) == 2, 15, "the held message stored"
    )
    r = await http.post(
        f"/api/dialogs/{dialog_id}/operator-messages", json={"content": "Operator here."}, headers=op.headers
    )
    assert r.status_code == 201, r.text
    # The chat's sends go out in order, so an answer owed to the held message would come first.
    texts = await wait_sent(fake_telegram, bot, CHAT, 2)
    assert texts[1] == "Operator here."

    assert (await http.post(f"/api/dialogs/{dialog_id}/release", headers=op.headers)).status_code == 200
    assert (await deliver(http, bot, text_update(CHAT, "back again [[tokens:3]]"))).status_code == 200
    texts = await wait_sent(fake_telegram, bot, CHAT, 3)
    assert "back" in texts[2]
    assert len(fake_telegram.sent_texts(bot.telegram_id, CHAT)) == 3
