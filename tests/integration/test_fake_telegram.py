"""The fake Bot API speaks the protocol the real python-telegram-bot client expects, limits included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from telegram import Bot, Message
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter

from tests.fixtures.fake_telegram import FakeTelegram


@pytest.fixture(scope="module")
def fake(log_dir: Path) -> Iterator[FakeTelegram]:
    server = FakeTelegram(log_dir, {"PATH": "/usr/bin:/bin"})
    yield server
    server.stop()


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[tuple[Bot, int, str]]:
    token, bot_id = fake.new_bot()
    client = Bot(token, base_url=f"{fake.base_url}/bot")
    async with client:
        yield client, bot_id, token


async def test_get_me_webhook_and_send(fake: FakeTelegram, bot: tuple[Bot, int, str]) -> None:
    client, bot_id, token = bot
    me = await client.get_me()
    assert me.id == bot_id and me.is_bot
    assert await client.set_webhook("https://example.com/hook", secret_token="s3cret", max_connections=5)
    info = await client.get_webhook_info()
    assert info.url == "https://example.com/hook" and info.max_connections == 5
    assert fake.bot(token)["webhook"]["secret_token"] == "s3cret"
    sent = await client.send_message(42, "hello")
    assert sent.text == "hello" and sent.chat.id == 42
    assert fake.sent_texts(bot_id, 42) == ["hello"]


async def test_edits_change_a_sent_message_and_count_against_the_limits(
    fake: FakeTelegram, bot: tuple[Bot, int, str]
) -> None:
    client, _, _ = bot
    sent = await client.send_message(7, "draft")
    with pytest.raises(RetryAfter):
        await client.edit_message_text("too soon", chat_id=7, message_id=sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await client.edit_message_text("draft", chat_id=7, message_id=sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await client.edit_message_text("lost", chat_id=7, message_id=sent.message_id + 10_000)
    other = await client.send_message(8, "first")
    await asyncio.sleep(1.05)  # the chat's one-per-second window, which the fake enforces on edits too
    edited = await client.edit_message_text("final", chat_id=8, message_id=other.message_id)
    assert isinstance(edited, Message) and edited.text == "final"


async def test_limits_answer_429_with_retry_after(fake: FakeTelegram, bot: tuple[Bot, int, str]) -> None:
    client, bot_id, _ = bot
    await client.send_message(1, "first")
    with pytest.raises(RetryAfter) as caught:
        await client.send_message(1, "second in the same second")
    assert caught.value.retry_after in (1, timedelta(seconds=1))
    for chat in range(2, 31):  # 29 more chats: 30 in this second for the bot
        await client.send_message(chat, "x")
    with pytest.raises(RetryAfter):
        await client.send_message(99, "the 31st message this second")
    assert len(fake.sent_texts(bot_id, 1)) == 1


async def test_injected_errors_map_to_client_exceptions(
    fake: FakeTelegram, bot: tuple[Bot, int, str]
) -> None:
    client, _, token = bot
    fake.block(token, 5)
    with pytest.raises(Forbidden):
        await client.send_message(5, "blocked")
    fake.fault(
        token=token,
        method="sendMessage",
        chat_id=-100,
        status=400,
        description="Bad Request: group chat was upgraded to a supergroup chat",
        migrate_to_chat_id=-1001,
    )
    with pytest.raises(ChatMigrated) as migrated:
        await client.send_message(-100, "to the old group")
    assert migrated.value.new_chat_id == -1001
    fake.fault(
        token=token, method="editMessageText", status=400, description="Bad Request: message is not modified"
    )
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await client.edit_message_text("same", chat_id=6, message_id=1)
    fake.revoke(token)
    with pytest.raises(InvalidToken):
        await client.send_message(7, "revoked")


async def test_get_updates_long_polls_and_confirms(fake: FakeTelegram, bot: tuple[Bot, int, str]) -> None:
    client, _, token = bot
    update = {
        "update_id": 10,
        "message": {"message_id": 1, "date": 0, "chat": {"id": 3, "type": "private"}, "text": "hi"},
    }
    fake.push_updates(token, [update])
    got = await client.get_updates(timeout=1)
    assert [u.update_id for u in got] == [10]
    assert await client.get_updates(offset=11, timeout=0) == ()
