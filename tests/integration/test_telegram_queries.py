"""The Telegram sending path's statements (services/telegram/queries.py), each against real rows."""

from __future__ import annotations

import uuid

import pytest

from services.telegram import queries
from tests.fixtures.queries import Connection, Rows


class Chat:
    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    async def make(self, bot_status: str = "active") -> Chat:
        rows = self.rows
        self.owner = await rows.user()
        self.assistant = await rows.assistant(self.owner)
        self.dialog = await rows.dialog(self.owner, self.assistant)
        self.bot = await rows._insert(
            "INSERT INTO telegram_bots (id, owner_id, assistant_id, telegram_id, username, token_encrypted,"
            " webhook_secret, status, pending_update_count, updated_at)"
            " VALUES (gen_random_uuid(), %s, %s, %s, 'b', 'x', 's', %s, 0, now()) RETURNING id",
            self.owner, self.assistant, uuid.uuid4().int % 2**62, bot_status,
        )  # fmt: skip
        self.id = await rows._insert(
            "INSERT INTO telegram_chats (id, bot_id, owner_id, chat_id, chat_type, dialog_id, active,"
            " updated_at) VALUES (gen_random_uuid(), %s, %s, 42, 'private', %s, true, now()) RETURNING id",
            self.bot, self.owner, self.dialog,
        )  # fmt: skip
        return self

    async def reply(self, status: str, content: str = "") -> uuid.UUID:
        return await self.rows.message(self.owner, self.dialog, "assistant", status, content)

    async def owe(
        self, reply: uuid.UUID | None = None, text: str | None = None, age_seconds: float = 0,
        state: str = "pending",
    ) -> uuid.UUID:  # fmt: skip
        return await self.rows._insert(
            "INSERT INTO telegram_sends (id, key, chat_row_id, reply_id, text, state, parts_sent, created_at)"
            " VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, 0, now() - make_interval(secs => %s))"
            " RETURNING id",
            uuid.uuid4().hex, self.id, reply, text, state, age_seconds,
        )  # fmt: skip


@pytest.fixture
async def chat(pg: Connection) -> Chat:
    return await Chat(Rows(pg)).make()


async def test_chat_of_reply(pg: Connection, chat: Chat) -> None:
    reply = await chat.reply("generating")
    await chat.owe(reply)
    assert await queries.chat_of_reply(pg, reply) == chat.id
    assert await queries.chat_of_reply(pg, uuid.uuid4()) is None


async def test_stalled_chats_are_those_with_a_ready_answer_waiting_too_long(
    pg: Connection, chat: Chat
) -> None:
    other = await Chat(chat.rows).make()
    generating, quiet = await Chat(chat.rows).make(), await Chat(chat.rows).make()
    await chat.owe(await chat.reply("completed", "hi"), age_seconds=120)  # ready, waited: stalled
    await other.owe(text="Hi! I'm a.", age_seconds=120)  # a fixed text, waited: stalled
    await generating.owe(await generating.reply("generating"), age_seconds=120)  # not ready yet
    await quiet.owe(await quiet.reply("failed"), age_seconds=5)  # ready, but only just
    await quiet.owe(await quiet.reply("completed"), age_seconds=120, state="sent")  # already sent
    assert set(await queries.stalled_chats(pg, older_than=60, limit=10)) == {chat.id, other.id}
    assert len(await queries.stalled_chats(pg, older_than=60, limit=1)) == 1


async def test_next_send_is_the_oldest_pending_one_with_what_sending_needs(
    pg: Connection, chat: Chat
) -> None:
    first_reply = await chat.reply("completed", "first answer")
    sent = await chat.owe(text="already out", state="sent")
    first = await chat.owe(first_reply)
    await chat.owe(text="second")
    row = await queries.next_send(pg, chat.id)
    assert row is not None and row["id"] == first and row["id"] != sent
    assert row["reply_status"] == "completed" and row["reply_content"] == "first answer"
    assert row["chat_id"] == 42 and row["chat_active"] and row["bot_status"] == "active"
    await queries.mark_sent(pg, first)
    after = await queries.next_send(pg, chat.id)
    assert after is not None and after["text"] == "second"


async def test_a_part_is_recorded_once_and_the_last_one_ends_the_send(pg: Connection, chat: Chat) -> None:
    send = await chat.owe(text="two parts")
    assert await queries.record_part(pg, send, part_index=0, message_id=100, done=False)
    assert not await queries.record_part(pg, send, part_index=0, message_id=100, done=False), "repeated"
    assert await queries.record_part(pg, send, part_index=1, message_id=101, done=True)
    stored = "SELECT state::text, parts_sent, message_ids, sent_at FROM telegram_sends WHERE id = %s"
    row = await (await pg.execute(stored, (send,))).fetchone()
    assert row is not None
    assert (row["state"], row["parts_sent"], row["message_ids"]) == ("sent", 2, [100, 101])
    assert row["sent_at"] is not None
    assert await queries.next_send(pg, chat.id) is None
