"""The Telegram sending path's hand-written SQL, on plain psycopg: every answer a bot sends runs most of
these, where the ORM's per-statement CPU would be the largest share of the send. Each is tested
directly in tests/integration/test_telegram_queries.py."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from models import TERMINAL_STATUSES, SendState

Connection = psycopg.AsyncConnection[dict[str, Any]]

_CHAT_OF_REPLY = "SELECT chat_row_id FROM telegram_sends WHERE reply_id = %s"

# Chats owed an answer that has been ready (a fixed text, or a terminal reply) for a while.
_STALLED_CHATS = """
SELECT DISTINCT s.chat_row_id
FROM telegram_sends s
LEFT JOIN messages m ON m.id = s.reply_id
WHERE s.state = %(pending)s AND s.created_at < now() - make_interval(secs => %(older_than)s)
  AND (s.reply_id IS NULL OR m.id IS NULL OR m.status::text = ANY(%(terminal)s))
LIMIT %(limit)s
"""

# The chat's oldest pending send with everything needed to send its next part.
_NEXT_SEND = """
SELECT s.id, s.key, s.parts_sent, s.text, s.reply_id, s.stream_message_id,
       c.chat_id, c.active AS chat_active, b.id AS bot_id, b.owner_id, b.status::text AS bot_status,
       b.token_encrypted, m.id AS found_reply_id, m.status::text AS reply_status, m.content AS reply_content
FROM telegram_sends s
JOIN telegram_chats c ON c.id = s.chat_row_id
JOIN telegram_bots b ON b.id = c.bot_id
LEFT JOIN messages m ON m.id = s.reply_id
WHERE s.chat_row_id = %(chat_row_id)s AND s.state = %(pending)s
ORDER BY s.seq
LIMIT 1
"""

_MARK_SENT = "UPDATE telegram_sends SET state = %(sent)s, sent_at = now() WHERE id = %(id)s"

# A part went out: counted once (the part index guards against a repeated record), the send done
# with its last part.
_RECORD_PART = """
UPDATE telegram_sends
SET parts_sent = %(parts_sent)s, message_ids = message_ids || jsonb_build_array(%(message_id)s::bigint),
    state = CASE WHEN %(done)s THEN %(sent)s::telegram_send_state ELSE state END,
    sent_at = CASE WHEN %(done)s THEN now() ELSE sent_at END
WHERE id = %(id)s AND parts_sent = %(part_index)s
"""

_TERMINAL = sorted(str(status) for status in TERMINAL_STATUSES)


async def chat_of_reply(conn: Connection, reply_id: uuid.UUID) -> uuid.UUID | None:
    row = await (await conn.execute(_CHAT_OF_REPLY, (reply_id,))).fetchone()
    return row["chat_row_id"] if row else None


async def stalled_chats(conn: Connection, older_than: float, limit: int) -> list[uuid.UUID]:
    params = {
        "pending": SendState.pending.value,
        "older_than": older_than,
        "terminal": _TERMINAL,
        "limit": limit,
    }
    rows = await (await conn.execute(_STALLED_CHATS, params)).fetchall()
    return [row["chat_row_id"] for row in rows]


async def next_send(conn: Connection, chat_row_id: uuid.UUID) -> dict[str, Any] | None:
    params = {"chat_row_id": chat_row_id, "pending": SendState.pending.value}
    return await (await conn.execute(_NEXT_SEND, params)).fetchone()


async def mark_sent(conn: Connection, send_id: uuid.UUID) -> None:
    await conn.execute(_MARK_SENT, {"sent": SendState.sent.value, "id": send_id})


async def record_part(
    conn: Connection, send_id: uuid.UUID, part_index: int, message_id: int | None, done: bool
) -> bool:
    """Record that part ``part_index`` went out; False when it was recorded already."""
    params = {
        "id": send_id, "part_index": part_index, "parts_sent": part_index + 1,
        "message_id": message_id, "done": done, "sent": SendState.sent.value,
    }  # fmt: skip
    return (await conn.execute(_RECORD_PART, params)).rowcount == 1
