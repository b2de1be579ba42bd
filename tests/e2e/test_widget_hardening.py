"""The anonymous widget against abuse, through the real API, worker and fake LLM: what a script with the
public key can spend, and what a visitor can learn or reach."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import redis

from core.events import EventBus
from tests.e2e.test_widget_sessions import SHOP, bearer, open_session, widget_assistant
from tests.fixtures.api import Account, WsClient, new_dialog, signup
from tests.fixtures.billing import sql
from tests.fixtures.stack import Stack


async def configure(
    http: httpx.AsyncClient, owner: Account, assistant: dict[str, Any], **fields: Any
) -> None:
    r = await http.patch(f"/api/assistants/{assistant['id']}", json=fields, headers=owner.headers)
    assert r.status_code == 200, r.text
    for name, value in fields.items():
        assert r.json()[name] == value, name


async def visitor_message(
    http: httpx.AsyncClient, public_key: str, content: str = "hi [[tokens:2]]"
) -> httpx.Response:
    """What a script does: forge the listed Origin, open a new session (a new visitor), post once."""
    r = await open_session(http, public_key, SHOP)
    assert r.status_code == 201, r.text
    session = r.json()
    return await http.post(
        f"/api/dialogs/{session['dialog_id']}/messages",
        json={"content": content},
        headers=bearer(session["session_token"]),
    )


def refused(r: httpx.Response) -> int:
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited", r.text
    return int(r.headers["Retry-After"])


async def test_new_sessions_per_message_still_hit_the_assistants_budgets(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "target")
    shop = await widget_assistant(client, owner, SHOP)
    await configure(client, owner, shop, widget_messages_per_minute=3)
    statuses = [(await visitor_message(client, shop["public_key"])).status_code for _ in range(3)]
    assert statuses == [202, 202, 202]
    assert 1 <= refused(await visitor_message(client, shop["public_key"])) <= 60

    daily = await widget_assistant(client, owner, SHOP)
    await configure(client, owner, daily, widget_messages_per_day=2)
    for _ in range(2):
        assert (await visitor_message(client, daily["public_key"])).status_code == 202
    assert refused(await visitor_message(client, daily["public_key"])) > 60

    other = await widget_assistant(client, owner, SHOP)
    assert (await visitor_message(client, other["public_key"])).status_code == 202, (
        "budgets are per assistant"
    )


async def test_the_daily_spending_cap_refuses_widget_messages_once_spent(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "capped")
    shop = await widget_assistant(client, owner, SHOP)
    await configure(client, owner, shop, widget_daily_spend_cap_micros=1)
    assert (await visitor_message(client, shop["public_key"])).status_code == 202, "nothing spent yet"
    retry_after = refused(await visitor_message(client, shop["public_key"]))
    assert 1 <= retry_after <= 86_400, "until the day ends"

    await configure(client, owner, shop, widget_daily_spend_cap_micros=None)
    assert (await visitor_message(client, shop["public_key"])).status_code == 202, "the owner lifts the cap"


async def test_a_rotated_public_key_refuses_the_old_one(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "rotator")
    shop = await widget_assistant(client, owner, SHOP)
    old_key = shop["public_key"]
    r = await client.post(f"/api/assistants/{shop['id']}/rotate-public-key", headers=owner.headers)
    assert r.status_code == 200, r.text
    new_key = r.json()["public_key"]
    assert new_key != old_key and new_key.startswith("pk_") and r.json()["id"] == shop["id"]

    r = await open_session(client, old_key)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await client.get(f"/widget/{old_key}")).status_code == 404
    assert (await open_session(client, new_key)).status_code == 201
    assert (await client.get(f"/widget/{new_key}")).status_code == 200

    stranger = await signup(client, "stranger")
    r = await client.post(f"/api/assistants/{shop['id']}/rotate-public-key", headers=stranger.headers)
    assert r.status_code == 404


async def test_only_the_resume_token_reaches_a_visitors_dialog(
    client: httpx.AsyncClient, database_url: str
) -> None:
    owner = await signup(client, "resumer")
    shop = await widget_assistant(client, owner, SHOP)
    first = (await open_session(client, shop["public_key"])).json()
    other = (await open_session(client, shop["public_key"])).json()
    assert "end_user_id" not in first and first["resume_token"] != other["resume_token"]
    ((end_user_id,),) = sql(
        database_url, "SELECT widget_end_user_id::text FROM dialogs WHERE id = %s", first["dialog_id"]
    )
    payload, _, _ = first["resume_token"].rpartition(".")
    forged = payload + "." + other["resume_token"].rpartition(".")[2]
    for body in ({"end_user_id": end_user_id}, {"resume_token": end_user_id}, {"resume_token": forged}):
        r = await open_session(client, shop["public_key"], **body)
        assert r.status_code == 201, r.text
        assert r.json()["dialog_id"] != first["dialog_id"], body
    again = (await open_session(client, shop["public_key"], resume_token=first["resume_token"])).json()
    assert again["dialog_id"] == first["dialog_id"]

    # Staff tell visitors apart by an opaque label; the visitor's id is nowhere in what they read.
    r = await client.get("/api/dialogs", params={"assistant_id": shop["id"]}, headers=owner.headers)
    assert r.status_code == 200 and end_user_id not in r.text
    labels = {d["id"]: d["visitor"] for d in r.json()["items"]}
    assert (
        labels[first["dialog_id"]].startswith("Visitor ")
        and labels[first["dialog_id"]] != labels[other["dialog_id"]]
    )
    assert all("widget_end_user_id" not in d for d in r.json()["items"])
    r = await client.get(f"/api/dialogs/{first['dialog_id']}", headers=owner.headers)
    assert r.json()["visitor"] == labels[first["dialog_id"]] and end_user_id not in r.text


GENERIC_ERROR = {"code": "reply_failed", "message": "The assistant could not answer. Please try again."}
CITED = [
    {
        "document_id": str(uuid.uuid4()),
        "chunk_id": str(uuid.uuid4()),
        "filename": "internal-margins.xlsx",
        "score": 0.9,
    }
]


async def visitor_reply(http: httpx.AsyncClient, session: dict[str, Any], content: str) -> str:
    r = await http.post(
        f"/api/dialogs/{session['dialog_id']}/messages",
        json={"content": content},
        headers=bearer(session["session_token"]),
    )
    assert r.status_code == 202, r.text
    return str(r.json()["reply"]["id"])


async def test_visitors_get_a_generic_error_and_no_costs_usage_request_ids_or_filenames(
    client: httpx.AsyncClient, stack: Stack, database_url: str
) -> None:
    owner = await signup(client, "sanitized")
    shop = await widget_assistant(client, owner, SHOP)
    session = (await open_session(client, shop["public_key"])).json()
    visitor, topic = bearer(session["session_token"]), f"dialog:{session['dialog_id']}"
    async with WsClient(stack.ws_url, session["session_token"]) as ws:
        await ws.subscribe(topic)
        failed = await visitor_reply(client, session, "hello [[fault:401]]")
        frames = await ws.until("reply.failed", failed)
        answered = await visitor_reply(client, session, "hello again [[tokens:4]]")
        frames += await ws.until("reply.completed", answered)
    events = {(f["type"], f["data"].get("reply_id")): f["data"] for f in frames}
    assert events[("reply.failed", failed)] == {"reply_id": failed, "error": GENERIC_ERROR}
    assert events[("reply.started", answered)] == {"reply_id": answered}, "no request id"
    completed = events[("reply.completed", answered)]
    assert completed["cost_micros"] is None and completed["citations"] == []
    assert completed["usage"] == {"prompt_tokens": None, "completion_tokens": None}
    assert "llm_auth_failed" not in str(frames) and "language model" not in str(frames)

    # The owner sees what happened; the visitor sees the generic error over HTTP too.
    r = await client.get(f"/api/messages/{failed}", headers=owner.headers)
    assert r.json()["error"]["code"] == "llm_auth_failed"
    r = await client.get(f"/api/messages/{failed}", headers=visitor)
    assert r.json()["status"] == "failed" and r.json()["error"] == GENERIC_ERROR, r.text

    # A settled reply that cited a document: cost, usage and filenames stay with staff.
    sql(
        database_url,
        "UPDATE messages SET cost_micros = 4321, citations = %s::jsonb WHERE id = %s",
        orjson.dumps(CITED).decode(),
        answered,
    )
    r = await client.get(f"/api/messages/{answered}", headers=owner.headers)
    assert r.json()["cost_micros"] == 4321 and r.json()["citations"] == CITED
    r = await client.get(f"/api/dialogs/{session['dialog_id']}/messages", headers=visitor)
    for message in r.json()["items"]:
        assert message["cost_micros"] is None and message["citations"] == [], message
        assert message["usage"] == {"prompt_tokens": None, "completion_tokens": None}
    assert "internal-margins" not in r.text and "llm_auth_failed" not in r.text

    # Where the owner allows it, visitors see the titles (and only the titles) of cited documents.
    await configure(client, owner, shop, widget_show_citations=True)
    r = await client.get(f"/api/messages/{answered}", headers=visitor)
    assert r.json()["citations"] == [{"title": "internal-margins.xlsx"}]
    bus = EventBus(sync_client=redis.Redis.from_url(stack.env["REDIS_URL"]))
    async with WsClient(stack.ws_url, session["session_token"]) as ws:
        await ws.subscribe(topic)
        # What the worker publishes for a reply with citations, as staff receive it.
        staff_view = {
            "reply_id": answered,
            "content": "x",
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            "cost_micros": 7,
            "citations": CITED,
        }
        bus.publish(topic, "reply.completed", staff_view)
        (frame,) = [f for f in await ws.until("reply.completed", answered) if f["type"] == "reply.completed"]
    assert frame["data"] == {
        "reply_id": answered,
        "content": "x",
        "usage": {"prompt_tokens": None, "completion_tokens": None},
        "cost_micros": None,
        "citations": [{"title": "internal-margins.xlsx"}],
    }


async def test_visitors_see_an_operator_by_display_name_only(
    client: httpx.AsyncClient, stack: Stack, database_url: str
) -> None:
    owner = await signup(client, "desk")
    shop = await widget_assistant(client, owner, SHOP)
    op = await signup(client, "olga")
    sql(database_url, "UPDATE users SET role = 'operator', name = 'Olga' WHERE id = %s", op.user_id)
    # Assigned as an accepted invitation leaves it (how is tested with operators).
    sql(
        database_url,
        "INSERT INTO assistant_operators (assistant_id, operator_id) VALUES (%s, %s)",
        shop["id"],
        op.user_id,
    )
    session = (await open_session(client, shop["public_key"])).json()
    dialog_id, visitor = session["dialog_id"], bearer(session["session_token"])
    async with WsClient(stack.ws_url, session["session_token"]) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        assert (
            await client.post(f"/api/dialogs/{dialog_id}/takeover", headers=op.headers)
        ).status_code == 200
        joined = (await ws.until("dialog.operator_joined"))[-1]["data"]
        r = await client.post(
            f"/api/dialogs/{dialog_id}/operator-messages",
            json={"content": "Hello there."},
            headers=op.headers,
        )
        answer_id = r.json()["id"]
        answer = (await ws.until("reply.completed", answer_id))[-1]["data"]
        r = await client.get(f"/api/dialogs/{dialog_id}", headers=visitor)
        assert r.status_code == 200 and r.json()["operator_id"] is None, "held, but not said by whom"
        assert (await client.post(f"/api/dialogs/{dialog_id}/release", headers=op.headers)).status_code == 200
        left = (await ws.until("dialog.operator_left"))[-1]["data"]
    assert joined == left == {"dialog_id": dialog_id, "operator_name": "Olga"}
    assert answer["content"] == "Hello there." and "author_id" not in answer
    assert op.user_id not in str(ws.frames) and op.email not in str(ws.frames)
    for path in (f"/api/dialogs/{dialog_id}/messages", f"/api/messages/{answer_id}"):
        r = await client.get(path, headers=visitor)
        assert r.status_code == 200 and op.user_id not in r.text and op.email not in r.text, r.text
    # Staff still see who answered.
    r = await client.get(f"/api/messages/{answer_id}", headers=owner.headers)
    assert r.json()["author_id"] == op.user_id


async def test_a_visitor_is_not_told_the_owners_balance(client: httpx.AsyncClient, database_url: str) -> None:
    owner = await signup(client, "broke")
    shop = await widget_assistant(client, owner, SHOP)
    sql(database_url, "UPDATE balances SET balance_micros = held_micros WHERE user_id = %s", owner.user_id)
    r = await visitor_message(client, shop["public_key"])
    assert r.status_code == 402 and r.json()["error"]["details"] is None, r.text
    assert "micros" not in r.text
    _, dialog_id = await new_dialog(client, owner)
    r = await client.post(f"/api/dialogs/{dialog_id}/messages", json={"content": "hi"}, headers=owner.headers)
    assert r.status_code == 402 and r.json()["error"]["details"]["available_micros"] == 0, "the owner is"
