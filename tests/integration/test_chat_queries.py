"""The reply path's statements (services/chat/queries.py), each against real rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from models import ReplyStatus
from services.chat import queries
from tests.fixtures.queries import Connection, Rows


class Turn:
    """A dialog with some history, then a question and its queued reply."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    async def make(self, history: int = 3) -> Turn:
        rows = self.rows
        self.owner = await rows.user()
        self.assistant = await rows.assistant(self.owner)
        self.dialog = await rows.dialog(self.owner, self.assistant)
        for i in range(history):
            await rows.message(
                self.owner, self.dialog, "user" if i % 2 == 0 else "assistant", "completed", f"h{i}"
            )
        await rows.message(self.owner, self.dialog, "assistant", "failed", "not history")
        self.question = await rows.message(self.owner, self.dialog, "user", "completed", "the question")
        self.reply = await rows.message(self.owner, self.dialog, "assistant", "queued")
        await rows.conn.execute(
            "UPDATE messages SET reply_to_id = %s WHERE id = %s", (self.question, self.reply)
        )
        return self

    async def state(self) -> dict[str, object]:
        row = await (
            await self.rows.conn.execute(
                "SELECT status::text, attempt, content, prompt_tokens, tokens FROM messages WHERE id = %s",
                (self.reply,),
            )
        ).fetchone()
        assert row is not None
        return dict(row)


async def claim(conn: Connection, turn: Turn, attempt: int = 1, silent_for: float = 30, history: int = 10):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    return await queries.claim_reply(
        conn, turn.reply, attempt, now, now - timedelta(seconds=silent_for), history
    )


async def test_a_claim_takes_a_queued_reply_once_with_what_its_prompt_needs(pg: Connection) -> None:
    turn = await Turn(Rows(pg)).make()
    row = await claim(pg, turn, history=2)
    assert row is not None
    assert (row["user_content"], row["model"], row["max_tokens"], row["resumed"]) == (
        "the question",
        "m",
        100,
        False,
    )
    assert [content for _, content, _tokens in row["history"]] == ["h1", "h2"], (
        "the last two completed, in order"
    )
    assert [tokens for _, _, tokens in row["history"]] == [None, None], "older rows have no stored estimate"
    assert row["has_knowledge"] is False
    assert (await turn.state())["status"] == "generating"
    assert await claim(pg, turn) is None, "generating and alive: not taken again"
    assert await claim(pg, turn, attempt=2) is None, "another attempt's reply"


async def test_a_silent_reply_is_claimed_again_as_resumed(pg: Connection) -> None:
    turn = await Turn(Rows(pg)).make()
    assert await claim(pg, turn) is not None
    await pg.execute(
        "UPDATE messages SET heartbeat_at = now() - interval '1 minute' WHERE id = %s", (turn.reply,)
    )
    again = await claim(pg, turn, silent_for=30)
    assert again is not None and again["resumed"] is True


async def test_a_reply_another_transaction_holds_is_not_claimed(pg: Connection, pg_other: Connection) -> None:
    turn = await Turn(Rows(pg_other)).make()  # committed, so the other session sees it
    try:
        await pg.execute("SELECT 1 FROM messages WHERE id = %s FOR UPDATE", (turn.reply,))
        await pg_other.execute("SET lock_timeout = '5s'")
        assert await claim(pg_other, turn) is None, "skipped, not waited for"
    finally:
        await pg.rollback()
        await pg_other.execute("DELETE FROM users WHERE id = %s", (turn.owner,))


async def test_finish_ends_only_its_own_generating_attempt(pg: Connection) -> None:
    turn = await Turn(Rows(pg)).make()
    assert await claim(pg, turn) is not None
    assert await queries.finish_reply(pg, turn.reply, 2, ReplyStatus.completed, "x", None, 1, 1, None) is None
    done = await queries.finish_reply(pg, turn.reply, 1, ReplyStatus.completed, "the answer", None, 7, 3, [])
    assert done is False, "no Telegram chat waits for it"
    assert await turn.state() == {
        "status": "completed",
        "attempt": 1,
        "content": "the answer",
        "prompt_tokens": 7,
        "tokens": 3,  # its content's estimate, stored for the prompts of later turns
    }
    again = await queries.finish_reply(
        pg, turn.reply, 1, ReplyStatus.failed, "", {"code": "x"}, None, None, None
    )
    assert again is None, "a terminal reply is not rewritten"


async def test_heartbeat_touches_only_the_generating_attempts_given(pg: Connection) -> None:
    rows = Rows(pg)
    first, second = await Turn(rows).make(history=0), await Turn(rows).make(history=0)
    for turn in (first, second):
        assert await claim(pg, turn) is not None
    await pg.execute("UPDATE messages SET heartbeat_at = now() - interval '1 hour' WHERE id = ANY(%s)",
                     ([first.reply, second.reply],))  # fmt: skip
    await queries.heartbeat_replies(pg, {first.reply: 1, second.reply: 9, uuid.uuid4(): 1})
    rows_now = await (
        await pg.execute("SELECT id, heartbeat_at > now() - interval '1 minute' AS fresh FROM messages"
                         " WHERE id = ANY(%s)", ([first.reply, second.reply],))
    ).fetchall()  # fmt: skip
    assert {r["id"]: r["fresh"] for r in rows_now} == {first.reply: True, second.reply: False}
