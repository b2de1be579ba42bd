"""Tenants never see each other, bad input gets clear errors, and retries of a request are safe."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.fixtures.api import WsClient, new_dialog, poll_reply, post_message, signup
from tests.fixtures.stack import Stack


async def test_another_users_resources_are_404_over_rest_and_ws(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    owner = await signup(client, "owner")
    other = await signup(client, "other")
    assistant_id, dialog_id = await new_dialog(client, owner)
    posted = await post_message(client, owner, dialog_id, "private words")
    reply_id = posted["reply"]["id"]
    await poll_reply(client, owner, reply_id)

    attempts = [
        ("GET", f"/api/assistants/{assistant_id}", None),
        ("PATCH", f"/api/assistants/{assistant_id}", {"name": "mine now"}),
        ("DELETE", f"/api/assistants/{assistant_id}", None),
        ("POST", "/api/dialogs", {"assistant_id": assistant_id}),
        ("GET", f"/api/dialogs/{dialog_id}", None),
        ("GET", f"/api/dialogs/{dialog_id}/messages", None),
        ("POST", f"/api/dialogs/{dialog_id}/messages", {"content": "hi"}),
        ("GET", f"/api/messages/{reply_id}", None),
        ("GET", f"/api/messages/{posted['message']['id']}", None),
        ("POST", f"/api/messages/{reply_id}/cancel", None),
    ]
    for method, path, body in attempts:
        r = await client.request(method, path, json=body, headers=other.headers)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"
        assert "private" not in r.text
    for path in ("/api/assistants", "/api/dialogs"):
        r = await client.get(path, headers=other.headers)
        assert r.json()["items"] == []

    async with WsClient(stack.ws_url, other.access_token) as ws:
        await ws.send({"type": "subscribe", "topic": f"dialog:{dialog_id}", "last_event_id": "0"})
        frame = await ws.recv()
        assert frame["type"] == "error" and frame["code"] == "not_found"
        # Nothing of the owner's dialog is replayed to the other user.
        await ws.send({"type": "ping"})
        assert (await ws.recv())["type"] == "pong"


async def test_message_content_is_validated(client: httpx.AsyncClient) -> None:
    user = await signup(client, "validator")
    _, dialog_id = await new_dialog(client, user)
    for body in (
        {"content": ""},
        {"content": "x" * 16_001},
        {},
        {"content": 5},
        {"content": "ok", "role": "system"},
    ):
        r = await client.post(f"/api/dialogs/{dialog_id}/messages", json=body, headers=user.headers)
        assert r.status_code == 422, body
        assert r.json()["error"]["code"] == "validation_error"
        assert r.json()["error"]["details"]
    r = await client.post(
        f"/api/dialogs/{uuid.uuid4()}/messages", json={"content": "hi"}, headers=user.headers
    )
    assert r.status_code == 404
    r = await client.get("/api/dialogs/not-a-uuid", headers=user.headers)
    assert r.status_code == 422
    r = await client.get(f"/api/dialogs/{dialog_id}/messages", headers=user.headers)
    assert r.json()["items"] == [], "rejected messages left nothing behind"


async def test_idempotency_key_returns_the_same_ids_and_one_reply(client: httpx.AsyncClient) -> None:
    user = await signup(client, "retrier")
    _, dialog_id = await new_dialog(client, user)
    headers = {**user.headers, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    url = f"/api/dialogs/{dialog_id}/messages"
    results = await asyncio.gather(
        *(client.post(url, json={"content": "once"}, headers=headers) for _ in range(4))
    )
    assert {r.status_code for r in results} == {202}
    assert len({(r.json()["message"]["id"], r.json()["reply"]["id"]) for r in results}) == 1
    reply_id = results[0].json()["reply"]["id"]
    await poll_reply(client, user, reply_id)
    again = await client.post(url, json={"content": "once"}, headers=headers)
    assert again.status_code == 202 and again.json()["reply"]["id"] == reply_id
    different = await client.post(url, json={"content": "something else"}, headers=headers)
    assert different.status_code == 409
    r = await client.get(url, headers=user.headers)
    assert [m["role"] for m in r.json()["items"]] == ["user", "assistant"]


async def test_assistant_crud_and_pagination(client: httpx.AsyncClient) -> None:
    user = await signup(client, "crud")
    created = []
    for i in range(5):
        r = await client.post("/api/assistants", json={"name": f"A{i}"}, headers=user.headers)
        assert r.status_code == 201 and r.json()["public_key"].startswith("pk_")
        created.append(r.json()["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/assistants", params=params, headers=user.headers)).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))
    r = await client.patch(f"/api/assistants/{created[0]}", json={"temperature": 0.1}, headers=user.headers)
    assert r.status_code == 200 and r.json()["temperature"] == 0.1 and r.json()["name"] == "A0"
    r = await client.patch(f"/api/assistants/{created[0]}", json={"temperature": 9}, headers=user.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    assert (await client.get(f"/api/assistants/{created[1]}", headers=user.headers)).json()[
        "telegram_streaming"
    ] is False
    patch = {"telegram_streaming": True}
    r = await client.patch(f"/api/assistants/{created[1]}", json=patch, headers=user.headers)
    assert r.status_code == 200 and r.json()["telegram_streaming"] is True
    patch = {"telegram_streaming": None}
    r = await client.patch(f"/api/assistants/{created[1]}", json=patch, headers=user.headers)
    assert r.status_code == 422
    for greeting, status, stored in (
        ("Hello!", 200, "Hello!"),
        ("x" * 4097, 422, "Hello!"),
        (None, 200, None),
    ):
        patch = {"greeting": greeting}
        r = await client.patch(f"/api/assistants/{created[1]}", json=patch, headers=user.headers)
        assert r.status_code == status, r.text
        got = await client.get(f"/api/assistants/{created[1]}", headers=user.headers)
        assert got.json()["greeting"] == stored
    r = await client.delete(f"/api/assistants/{created[0]}", headers=user.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/assistants/{created[0]}", headers=user.headers)
    assert r.status_code == 404
    r = await client.get("/api/assistants", params={"limit": 500}, headers=user.headers)
    assert r.status_code == 422
