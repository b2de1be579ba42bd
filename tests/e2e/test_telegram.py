"""Telegram bots through the real system: webhook calls to the API, real telegram and llm worker processes,
the fake Bot API (which enforces Telegram's limits) and the fake LLM, over HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis
from cryptography.fernet import Fernet, InvalidToken

from core.queues import TASKS
from services.telegram.inbox import PARKED_RETRY_SECONDS, inbox_key, scheduled_key
from services.telegram.sending import CUT_OFF_TEXT
from tests.fixtures.api import WsClient, new_assistant, signup
from tests.fixtures.billing import make_admin, send_task
from tests.fixtures.database import sql
from tests.fixtures.fake_telegram import FakeTelegram
from tests.fixtures.processes import eventually
from tests.fixtures.stack import TEST_JWT_SECRET, FakeLLM, Stack, running_stack
from tests.fixtures.telegram import (
    ConnectedBot,
    connect_bot,
    deliver,
    send_states,
    text_update,
    wait_sent,
    webhook_stack_env,
)

_membership_ids = itertools.count(900_000)
IN_FLIGHT = 3


@pytest.fixture(scope="module")
def stack(
    stack_env: dict[str, str], fake_llm: FakeLLM, fake_telegram: FakeTelegram, log_dir: Any
) -> Iterator[Stack]:
    env = webhook_stack_env(
        stack_env, fake_llm, fake_telegram,
        CHATAI_TELEGRAM_CONCURRENCY="20",
        CHATAI_TELEGRAM_BOT_REPLIES_IN_FLIGHT=str(IN_FLIGHT),
        # Below the bots' cap, so an assistant at its cap holds updates back too (none is dropped).
        CHATAI_MAX_CONCURRENT_GENERATIONS_PER_ASSISTANT="2",
    )  # fmt: skip
    with running_stack(env, log_dir, workers=("llm", "telegram")) as system:
        yield system


async def test_connect_validates_the_token_and_registers_the_webhook(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, stack: Stack, database_url: str
) -> None:
    owner = await signup(http, "owner")
    assistant_id = await new_assistant(http, owner)
    for bad in ("123:not-a-token-registered-anywhere-xx", "garbage"):
        r = await http.post(
            "/api/bots", json={"assistant_id": assistant_id, "token": bad}, headers=owner.headers
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_bot_token"

    bot = await connect_bot(http, fake_telegram, owner)
    r = await http.get(f"/api/bots/{bot.id}", headers=owner.headers)
    body = r.json()
    assert body["status"] == "active" and body["username"].endswith("_bot")
    assert body["webhook_url"] == f"https://chatai.example/api/telegram/webhook/{bot.id}"
    webhook = fake_telegram.bot(bot.token)["webhook"]
    assert webhook["url"] == body["webhook_url"]
    assert len(webhook["secret_token"]) >= 32
    assert set(webhook["allowed_updates"]) >= {"message", "my_chat_member"}
    assert webhook["max_connections"] == 40
    r = await http.post(
        "/api/bots", json={"assistant_id": assistant_id, "token": bot.token}, headers=owner.headers
    )
    assert r.status_code == 409

    # The token is stored encrypted, under a key not derived from the JWT secret, and never written to
    # a log; the webhook secret is stored as its SHA-256 only.
    ((stored, stored_secret),) = sql(
        database_url, "SELECT token_encrypted, webhook_secret FROM telegram_bots WHERE id = %s", bot.id
    )
    assert bot.token.encode() not in bytes(stored)
    with pytest.raises(InvalidToken):
        # The key earlier versions derived from the JWT secret.
        derived = hashlib.sha256(b"chatai-secretbox:" + TEST_JWT_SECRET.encode()).digest()
        Fernet(base64.urlsafe_b64encode(derived)).decrypt(bytes(stored))
    assert stored_secret == hashlib.sha256(webhook["secret_token"].encode()).hexdigest()
    for child in stack.children:
        assert bot.token not in child.log_text(), child.name

    other = await signup(http, "other")
    assert (await http.get(f"/api/bots/{bot.id}", headers=other.headers)).status_code == 404
    assert (await http.delete(f"/api/bots/{bot.id}", headers=other.headers)).status_code == 404
    assert [b["id"] for b in (await http.get("/api/bots", headers=owner.headers)).json()["items"]] == [bot.id]
    assert (await http.get("/api/bots", headers=other.headers)).json()["items"] == []

    assert (await http.delete(f"/api/bots/{bot.id}", headers=owner.headers)).status_code == 204
    assert fake_telegram.bot(bot.token)["webhook"] == {}
    assert (await http.get(f"/api/bots/{bot.id}", headers=owner.headers)).status_code == 404


async def test_wrong_secret_is_refused_and_nothing_is_queued(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, stack_redis_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    update = text_update(501, "hello")
    for secret in ("wrong", ""):
        r = await deliver(http, bot, update, secret=secret)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
    r = await http.post(
        bot.webhook_path, content=orjson.dumps(update), headers={"content-type": "application/json"}
    )
    assert r.status_code == 403
    client = redis.Redis.from_url(stack_redis_url)
    assert client.keys(f"chatai:tg:*{bot.id}*") == []
    # No task about this bot waits on the queue (other tests' tasks may, whatever ran before).
    bodies = [base64.b64decode(orjson.loads(raw)["body"]) for raw in client.lrange("telegram", 0, -1)]
    assert [body for body in bodies if bot.id.encode() in body] == []

    # The refused update was not remembered: delivered properly, it is answered.
    assert (await deliver(http, bot, update)).status_code == 200
    [answer] = await wait_sent(fake_telegram, bot, 501, 1)
    assert answer.startswith("Echo: hello")


async def test_the_same_update_twice_gets_one_reply(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    update = text_update(502, "once")
    responses = await asyncio.gather(*(deliver(http, bot, update) for _ in range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200]
    # A later update in the same chat is answered after anything the repeats could have caused.
    assert (await deliver(http, bot, text_update(502, "later"))).status_code == 200
    texts = await wait_sent(fake_telegram, bot, 502, 2)
    assert [t.split()[1] for t in texts] == ["once", "later"]
    # Recorded once Telegram has accepted it, so a moment after the fake saw it.
    await asyncio.to_thread(
        eventually, lambda: send_states(database_url, bot, 502) == ["sent", "sent"], 10, "both sends recorded"
    )
    (count,), *_ = sql(
        database_url,
        """SELECT count(*) FROM messages m JOIN telegram_chats c ON c.dialog_id = m.dialog_id
           WHERE c.bot_id = %s AND m.role = 'user'""",
        bot.id,
    )
    assert count == 2


async def test_updates_of_a_chat_are_answered_in_order_within_the_chat_limit(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram
) -> None:
    bot = await connect_bot(http, fake_telegram)
    for i in range(5):
        assert (await deliver(http, bot, text_update(503, f"m{i}"))).status_code == 200
    texts = await wait_sent(fake_telegram, bot, 503, 5)
    assert [t.split()[1] for t in texts] == [f"m{i}" for i in range(5)]
    calls = fake_telegram.calls("sendMessage", bot.telegram_id, 503)
    assert [c["status"] for c in calls] == [200] * 5, "no send was refused by Telegram's limits"
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.95, gaps


async def test_start_greets_and_reset_starts_a_new_dialog(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram, name="Ada")
    await deliver(http, bot, text_update(504, "/start"))
    [greeting] = await wait_sent(fake_telegram, bot, 504, 1)
    assert "Ada" in greeting
    # An assistant's own greeting is what /start says.
    greeter = await connect_bot(http, fake_telegram, greeting="Welcome to the shop! Ask me about orders.")
    await deliver(http, greeter, text_update(504, "/start@greeter_bot"))
    assert await wait_sent(fake_telegram, greeter, 504, 1) == ["Welcome to the shop! Ask me about orders."]
    (first_dialog,), *_ = sql(database_url, "SELECT dialog_id FROM telegram_chats WHERE bot_id = %s", bot.id)
    await deliver(http, bot, text_update(504, "/reset"))
    texts = await wait_sent(fake_telegram, bot, 504, 2)
    assert texts[1] == "Started a new conversation."
    (second_dialog,), *_ = sql(database_url, "SELECT dialog_id FROM telegram_chats WHERE bot_id = %s", bot.id)
    assert second_dialog != first_dialog


async def test_a_429_pauses_only_that_bot(http: httpx.AsyncClient, fake_telegram: FakeTelegram) -> None:
    hot, calm = await connect_bot(http, fake_telegram), await connect_bot(http, fake_telegram)
    fake_telegram.fault(token=hot.token, method="sendMessage", status=429, retry_after=3,
                        description="Too Many Requests: retry after 3")  # fmt: skip
    await deliver(http, hot, text_update(505, "hot one"))
    await deliver(http, hot, text_update(506, "hot two"))
    await deliver(http, calm, text_update(507, "calm"))
    await wait_sent(fake_telegram, calm, 507, 1)
    await wait_sent(fake_telegram, hot, 505, 1)
    await wait_sent(fake_telegram, hot, 506, 1)
    hot_calls = fake_telegram.calls("sendMessage", hot.telegram_id)
    refused = [c for c in hot_calls if c["status"] == 429]
    assert len(refused) == 1
    after = [c["at"] - refused[0]["at"] for c in hot_calls if c["at"] > refused[0]["at"]]
    assert after and min(after) >= 2.9, "the bot sent nothing while Telegram asked it to wait"
    [calm_call] = fake_telegram.calls("sendMessage", calm.telegram_id)
    assert calm_call["at"] - refused[0]["at"] < 2.5, "the other bot was not held back"
    r = await http.get(f"/api/bots/{hot.id}", headers=hot.owner.headers)
    assert r.json()["paused_until"] is not None


async def test_a_blocked_user_gets_no_more_sends(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    fake_telegram.block(bot.token, 508)
    # The first reply is slow, so both messages are handled before it is sent.
    await deliver(http, bot, text_update(508, "[[first_delay_ms:500]] one"))
    await deliver(http, bot, text_update(508, "two"))

    def settled() -> list[str] | None:
        states = send_states(database_url, bot, 508)
        return states if len(states) == 2 and "pending" not in states else None

    states = await asyncio.to_thread(eventually, settled, 30, "both answers to be settled")
    assert states == ["dropped", "dropped"]
    calls = fake_telegram.calls("sendMessage", bot.telegram_id, 508)
    assert [c["status"] for c in calls] == [403], "after the 403 nothing more was tried"
    (active,), *_ = sql(database_url, "SELECT active FROM telegram_chats WHERE bot_id = %s", bot.id)
    assert active is False


async def test_a_revoked_token_disables_the_bot_and_others_keep_working(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, stack: Stack
) -> None:
    revoked, healthy = await connect_bot(http, fake_telegram), await connect_bot(http, fake_telegram)
    async with WsClient(stack.ws_url, revoked.owner.access_token) as ws:
        await ws.subscribe("user")
        fake_telegram.revoke(revoked.token)
        await deliver(http, revoked, text_update(509, "anyone there"))
        await deliver(http, healthy, text_update(510, "hello"))
        await wait_sent(fake_telegram, healthy, 510, 1)
        frames = await ws.until("bot.status", timeout=30)
    assert frames[-1]["data"] == {
        "bot_id": revoked.id,
        "status": "disabled",
        "reason": "Telegram rejected the bot token",
    }
    r = await http.get(f"/api/bots/{revoked.id}", headers=revoked.owner.headers)
    assert r.json()["status"] == "disabled"
    # A disabled bot's updates are acknowledged and ignored; the healthy bot still answers.
    before = len(fake_telegram.calls("sendMessage", revoked.telegram_id))
    assert (await deliver(http, revoked, text_update(509, "again"))).status_code == 200
    await deliver(http, healthy, text_update(510, "still there"))
    await wait_sent(fake_telegram, healthy, 510, 2)
    assert len(fake_telegram.calls("sendMessage", revoked.telegram_id)) == before == 1


async def test_deactivating_the_owner_disables_their_bots_and_updates_get_no_reply(
    http: httpx.AsyncClient,
    fake_telegram: FakeTelegram,
    stack: Stack,
    database_url: str,
    stack_redis_url: str,
) -> None:
    admin = await signup(http, "admin")
    make_admin(database_url, admin.user_id)
    bot = await connect_bot(http, fake_telegram)
    owner_path = f"/api/admin/users/{bot.owner.user_id}"
    await deliver(http, bot, text_update(511, "before"))
    [answer] = await wait_sent(fake_telegram, bot, 511, 1)

    r = await http.patch(owner_path, json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert bot_status(database_url, bot) == ("disabled", "The owner's account is deactivated")
    # Telegram is told to stop calling: the webhook is removed through the Bot API.
    await asyncio.to_thread(
        eventually, lambda: fake_telegram.bot(bot.token)["webhook"] == {}, 30, "the webhook to be removed"
    )
    # An update Telegram still delivers is acknowledged, handled (if queued at all) and answered by nothing.
    assert (await deliver(http, bot, text_update(511, "after"))).status_code == 200
    await handled(stack_redis_url, bot, 511)
    assert send_states(database_url, bot, 511) == ["sent"]
    assert fake_telegram.sent_texts(bot.telegram_id, 511) == [answer]

    # Reactivated: the bot and its webhook come back.
    r = await http.patch(owner_path, json={"is_active": True}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert bot_status(database_url, bot) == ("active", None)
    await asyncio.to_thread(
        eventually, lambda: bool(fake_telegram.bot(bot.token)["webhook"]), 30, "the webhook to be restored"
    )
    await deliver(http, bot, text_update(511, "again"))
    await wait_sent(fake_telegram, bot, 511, 2)


async def test_the_owner_pauses_and_resumes_a_bot(
    http: httpx.AsyncClient,
    fake_telegram: FakeTelegram,
    stack: Stack,
    database_url: str,
    stack_redis_url: str,
) -> None:
    bot = await connect_bot(http, fake_telegram)
    path = f"/api/bots/{bot.id}"
    other = await signup(http, "not-the-owner")
    assert (await http.post(f"{path}/pause", headers=other.headers)).json()["error"]["code"] == "not_found"

    for _ in range(2):  # pausing a paused bot changes nothing
        r = await http.post(f"{path}/pause", headers=bot.owner.headers)
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["disabled_reason"]) == ("disabled", "Paused by its owner")
    await asyncio.to_thread(
        eventually, lambda: fake_telegram.bot(bot.token)["webhook"] == {}, 30, "the webhook to be removed"
    )
    # What Telegram still delivers is acknowledged and answered by nothing.
    assert (await deliver(http, bot, text_update(513, "anyone?"))).status_code == 200
    await handled(stack_redis_url, bot, 513)
    assert send_states(database_url, bot, 513) == []

    r = await http.post(f"{path}/resume", headers=bot.owner.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["disabled_reason"]) == ("active", None)
    await asyncio.to_thread(
        eventually, lambda: bool(fake_telegram.bot(bot.token)["webhook"]), 30, "the webhook to be restored"
    )
    secret = fake_telegram.bot(bot.token)["webhook"]["secret_token"]
    await deliver(http, bot, text_update(513, "back?"), secret=secret)
    await wait_sent(fake_telegram, bot, 513, 1)

    # A bot Telegram refused cannot be resumed: it needs a new token.
    sql(
        database_url,
        "UPDATE telegram_bots SET status = 'disabled', disabled_reason = %s WHERE id = %s",
        "Telegram rejected the bot token",
        bot.id,
    )
    r = await http.post(f"{path}/resume", headers=bot.owner.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "bot_disabled")
    assert bot_status(database_url, bot) == ("disabled", "Telegram rejected the bot token")


async def test_updates_of_an_inactive_owner_are_ignored_by_the_handler(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, stack: Stack, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    # The account is inactive while its bot still is not (the moment between the two, or a bot pool that
    # polled an update before the bot was disabled).
    sql(database_url, "UPDATE users SET is_active = false WHERE id = %s", bot.owner.user_id)
    update = text_update(512, "anyone?")
    assert (await deliver(http, bot, update)).status_code == 200
    [worker] = [child for child in stack.children if child.name.startswith("worker-telegram")]
    worker.wait_for_log(f"update {update['update_id']} of bot {bot.id}: ignored: owner deactivated")
    assert send_states(database_url, bot, 512) == []
    assert fake_telegram.calls("sendMessage", bot.telegram_id, 512) == []


def bot_status(database_url: str, bot: ConnectedBot) -> tuple[str, str | None]:
    [(status, reason)] = sql(
        database_url, "SELECT status::text, disabled_reason FROM telegram_bots WHERE id = %s", bot.id
    )
    return status, reason


async def handled(redis_url: str, bot: ConnectedBot, chat_id: int) -> None:
    """Wait until the chat's queued updates have been handled (nothing queued nor scheduled for it)."""
    client = redis.Redis.from_url(redis_url)
    keys = inbox_key(bot.id, str(chat_id)), scheduled_key(bot.id, str(chat_id))
    await asyncio.to_thread(eventually, lambda: client.exists(*keys) == 0, 30, "the chat's updates handled")


async def test_a_9000_character_answer_arrives_as_three_messages(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram, max_tokens=2000)
    await deliver(http, bot, text_update(511, "[[tokens:1480]] long"))
    parts = await wait_sent(fake_telegram, bot, 511, 3)
    (content,), *_ = sql(
        database_url,
        """SELECT m.content FROM messages m JOIN telegram_chats c ON c.dialog_id = m.dialog_id
           WHERE c.bot_id = %s AND m.role = 'assistant'""",
        bot.id,
    )
    assert 8500 <= len(content) <= 12_000
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)
    assert all(p.endswith(".") for p in parts[:2]), "split on sentence boundaries"
    assert " ".join(parts).split() == content.split()
    calls = fake_telegram.calls("sendMessage", bot.telegram_id, 511)
    assert [c["status"] for c in calls] == [200, 200, 200]
    await asyncio.to_thread(
        eventually, lambda: send_states(database_url, bot, 511) == ["sent"], 10, "the answer recorded as sent"
    )


async def test_a_streamed_answer_grows_in_one_message_and_ends_with_the_full_text(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram, max_tokens=2000, telegram_streaming=True)
    # About 5,500 characters written over ~6 s: shown as it grows, then finished in two messages.
    await deliver(http, bot, text_update(512, "[[tokens:900]] [[delay_ms:7]] stream it"))
    await asyncio.to_thread(
        eventually, lambda: send_states(database_url, bot, 512) == ["sent"], 30, "the streamed answer sent"
    )
    (content,), *_ = sql(
        database_url,
        """SELECT m.content FROM messages m JOIN telegram_chats c ON c.dialog_id = m.dialog_id
           WHERE c.bot_id = %s AND m.role = 'assistant'""",
        bot.id,
    )
    screen = fake_telegram.screen(bot.telegram_id, 512)
    assert len(screen) == 2 and all(len(m) <= 4096 for m in screen)
    assert " ".join(screen).split() == content.split(), "the chat ends with the full text"

    calls = [c for c in fake_telegram.calls(None, bot.telegram_id, 512) if c["status"] == 200]
    first = next(c for c in calls if c["method"] == "sendMessage")
    edits = [c for c in calls if c["method"] == "editMessageText"]
    assert edits and all(int(e["params"]["message_id"]) == first["message_id"] for e in edits)
    shown = [" ".join(c["params"]["text"].split()) for c in [first, *edits]]
    assert len(shown) >= 3, "the answer was shown while it was written"
    assert all(" ".join(content.split()).startswith(text) for text in shown)
    assert all(len(a) < len(b) for a, b in itertools.pairwise(shown[:-1])), "it grew"
    assert len(shown[0]) < len(screen[0]), "the first look was a partial text"
    times = [c["at"] for c in calls]
    assert all(b - a >= 0.99 for a, b in itertools.pairwise(times)), "at most one send or edit a second"
    assert not [c for c in fake_telegram.calls(None, bot.telegram_id, 512) if c["status"] == 429]


async def test_an_answer_cut_off_midway_is_sent_with_a_note_that_it_was(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram
) -> None:
    bot = await connect_bot(http, fake_telegram)
    # The model closes the connection after three pieces, every time: the reply fails with what it had.
    assert (await deliver(http, bot, text_update(520, "please answer [[fault:drop]]"))).status_code == 200
    [answer] = await wait_sent(fake_telegram, bot, 520, 1)
    assert answer == f"Echo: please answer\n\n{CUT_OFF_TEXT}"


async def test_an_answer_whose_delivery_was_lost_is_sent_by_the_sweep(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str, stack_redis_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    await deliver(http, bot, text_update(514, "/start"))
    await wait_sent(fake_telegram, bot, 514, 1)
    # Owed two minutes ago, and no delivery ever ran for it (the run was lost with its worker).
    sql(
        database_url,
        """INSERT INTO telegram_sends (id, key, chat_row_id, text, state, parts_sent, created_at)
           SELECT gen_random_uuid(), 'lost-514', c.id, 'Sorry for the wait.', 'pending', 0,
                  now() - interval '2 minutes'
           FROM telegram_chats c WHERE c.bot_id = %s AND c.chat_id = 514""",
        bot.id,
    )
    send_task(stack_redis_url, TASKS.telegram_sweep_sends)
    texts = await wait_sent(fake_telegram, bot, 514, 2)
    assert texts[1] == "Sorry for the wait."
    await asyncio.to_thread(
        eventually,
        lambda: send_states(database_url, bot, 514) == ["sent", "sent"],
        10,
        "both recorded as sent",
    )


async def test_a_migrated_group_is_followed_and_server_errors_are_retried(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    fake_telegram.fault(token=bot.token, method="sendMessage", chat_id=-512, status=400,
                        description="Bad Request: group chat was upgraded to a supergroup chat",
                        migrate_to_chat_id=-100512)  # fmt: skip
    fake_telegram.fault(token=bot.token, method="sendMessage", chat_id=-100512, status=502,
                        description="Bad Gateway", times=2)  # fmt: skip
    await deliver(http, bot, text_update(-512, "in the group"))
    [answer] = await wait_sent(fake_telegram, bot, -100512, 1)
    assert answer.startswith("Echo: in the group")
    statuses = [c["status"] for c in fake_telegram.calls("sendMessage", bot.telegram_id)]
    assert statuses == [400, 502, 502, 200]
    (chat_id,), *_ = sql(database_url, "SELECT chat_id FROM telegram_chats WHERE bot_id = %s", bot.id)
    assert chat_id == -100512


async def test_membership_updates_switch_a_chat_off_and_on(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    await deliver(http, bot, text_update(513, "hi"))
    await wait_sent(fake_telegram, bot, 513, 1)

    def membership(status: str) -> dict[str, Any]:
        me = {"id": bot.telegram_id, "is_bot": True, "first_name": "bot"}
        return {
            "update_id": next(_membership_ids),
            "my_chat_member": {
                "chat": {"id": 513, "type": "private", "first_name": "Ann"},
                "from": {"id": 514, "is_bot": False, "first_name": "Ann"},
                "date": int(time.time()),
                "old_chat_member": {"user": me, "status": "member"},
                "new_chat_member": {"user": me, "status": status, "until_date": 0},
            },
        }

    def active() -> bool:
        (value,), *_ = sql(database_url, "SELECT active FROM telegram_chats WHERE bot_id = %s", bot.id)
        return bool(value)

    assert (await deliver(http, bot, membership("kicked"))).status_code == 200
    await asyncio.to_thread(eventually, lambda: not active(), 20, "the chat to be switched off")
    assert (await deliver(http, bot, membership("member"))).status_code == 200
    await asyncio.to_thread(eventually, active, 20, "the chat to be switched on")


async def test_webhook_health_records_errors_and_restores_a_lost_webhook(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, stack_redis_url: str, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    ours = fake_telegram.bot(bot.token)["webhook"]["url"]
    fake_telegram.set_webhook_info(
        bot.token,
        url="https://stale.example/hook",
        pending_update_count=7,
        last_error_message="Connection refused",
    )
    send_task(stack_redis_url, TASKS.telegram_check_webhooks)

    def checked() -> bool:
        (pending,), *_ = sql(
            database_url, "SELECT pending_update_count FROM telegram_bots WHERE id = %s", bot.id
        )
        return pending == 7

    await asyncio.to_thread(eventually, checked, 30, "the webhook check to record the bot's state")
    body = (await http.get(f"/api/bots/{bot.id}", headers=bot.owner.headers)).json()
    assert body["last_webhook_error"] == "Connection refused"
    assert fake_telegram.bot(bot.token)["webhook"]["url"] == ours


async def test_a_bot_keeps_at_most_its_replies_in_flight(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, database_url: str
) -> None:
    bot = await connect_bot(http, fake_telegram)
    chats = range(520, 528)
    for chat_id in chats:
        await deliver(http, bot, text_update(chat_id, f"[[first_delay_ms:400]] busy{chat_id}"))

    def in_flight() -> int:
        (replies, settled), *_ = sql(
            database_url,
            """SELECT count(*) FILTER (WHERE s.reply_id IS NOT NULL),
                      count(*) FILTER (WHERE s.reply_id IS NOT NULL AND s.state <> 'pending')
               FROM telegram_sends s JOIN telegram_chats c ON c.id = s.chat_row_id WHERE c.bot_id = %s""",
            bot.id,
        )
        return int(replies) - int(settled)

    peaks = [0]

    def all_sent() -> bool:
        peaks.append(in_flight())
        return all(fake_telegram.sent_texts(bot.telegram_id, c) for c in chats)

    # Sooner than a parked chat's fallback retry: the chats that waited were woken as places freed up.
    await asyncio.to_thread(eventually, all_sent, PARKED_RETRY_SECONDS[0] - 3, "the eight replies to be sent")
    assert 2 <= max(peaks) <= IN_FLIGHT, peaks


async def test_webhook_bots_are_never_polled_limits_never_exceeded_and_no_token_logged(
    http: httpx.AsyncClient, fake_telegram: FakeTelegram, stack: Stack
) -> None:
    # Traffic of its own: three bots, each answering bursts in two chats (faster than Telegram allows
    # per chat, so the limiter must space them).
    bots = [await connect_bot(http, fake_telegram) for _ in range(3)]
    chats = (530, -531)
    for bot in bots:
        for chat_id in chats:
            for i in range(3):
                assert (await deliver(http, bot, text_update(chat_id, f"burst {i}"))).status_code == 200
    for bot in bots:
        for chat_id in chats:
            await wait_sent(fake_telegram, bot, chat_id, 3)

    assert fake_telegram.calls("getUpdates") == []
    refused = [c for c in fake_telegram.calls() if c.get("status") == 429 and not c.get("injected")]
    assert refused == []
    logs = {child.name: child.log_text() for child in stack.children}
    tokens = {bot.token for bot in bots} | set(fake_telegram.tokens)
    leaked = [(name, token) for token in tokens for name, text in logs.items() if token in text]
    assert leaked == []
