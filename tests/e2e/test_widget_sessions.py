"""Widget sessions through the real API: origins, unknown keys, and a token confined to its one dialog."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.api import Account, WsClient, new_dialog, poll_reply, post_message, signup
from tests.fixtures.stack import FakeLLM, Stack, running_stack

SHOP = "http://shop.example:8080"


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Any) -> Iterator[Stack]:
    # A small per-assistant session limit, so one test can reach it; each other test uses fresh assistants.
    env = {**stack_env, **fake_llm.env, "CHATAI_RATE_LIMIT_WIDGET_SESSIONS_PER_ASSISTANT": "6/minute"}
    with running_stack(env, log_dir) as system:
        yield system


async def widget_assistant(http: httpx.AsyncClient, owner: Account, *origins: str) -> dict[str, Any]:
    r = await http.post("/api/assistants", json={"name": "Shop helper"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    assistant = r.json()
    assert assistant["widget_allowed_origins"] == []
    if origins:
        r = await http.patch(
            f"/api/assistants/{assistant['id']}",
            json={"widget_allowed_origins": list(origins)},
            headers=owner.headers,
        )
        assert r.status_code == 200, r.text
        assistant = r.json()
    return assistant


async def open_session(
    http: httpx.AsyncClient, public_key: str, origin: str | None = SHOP, **body: Any
) -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    return await http.post(f"/api/widget/{public_key}/sessions", json=body or None, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_unknown_key_is_404_and_unlisted_origins_are_403(client: httpx.AsyncClient) -> None:
    r = await open_session(client, "pk_nobody_has_this_key")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    owner = await signup(client, "shop")
    closed = await widget_assistant(client, owner)
    r = await open_session(client, closed["public_key"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", "no origins listed: widget off"

    shop = await widget_assistant(client, owner, SHOP + "/", "https://www.shop.example")
    assert shop["widget_allowed_origins"] == [SHOP, "https://www.shop.example"], "stored normalized"
    for origin in ("http://evil.example", "http://shop.example", "https://shop.example:8080", None):
        r = await open_session(client, shop["public_key"], origin)
        assert r.status_code == 403, (origin, r.text)
    r = await open_session(client, shop["public_key"], "https://WWW.shop.example")
    assert r.status_code == 201, r.text

    r = await client.patch(
        f"/api/assistants/{shop['id']}",
        json={"widget_allowed_origins": ["http://shop.example/path"]},
        headers=owner.headers,
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"


async def test_token_reaches_its_dialog_and_nothing_else(client: httpx.AsyncClient, stack: Stack) -> None:
    owner = await signup(client, "owner")
    shop = await widget_assistant(client, owner, SHOP)
    _, owners_dialog = await new_dialog(client, owner)
    owners_reply = (await post_message(client, owner, owners_dialog, "private [[tokens:3]]"))["reply"]["id"]

    r = await open_session(client, shop["public_key"])
    assert r.status_code == 201, r.text
    session = r.json()
    token, dialog_id = session["session_token"], session["dialog_id"]
    assert session["expires_in"] > 0 and session["resume_token"]

    async with WsClient(stack.ws_url, token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        r = await client.post(
            f"/api/dialogs/{dialog_id}/messages", json={"content": "hi [[tokens:5]]"}, headers=bearer(token)
        )
        assert r.status_code == 202, r.text
        reply_id = r.json()["reply"]["id"]
        frames = await ws.until("reply.completed", reply_id)
        assert frames[-1]["data"]["content"]
        for topic in (f"dialog:{owners_dialog}", "user"):
            await ws.send({"type": "subscribe", "topic": topic, "last_event_id": "0"})
            frame = await ws.recv()
            while frame.get("type") != "error":  # live events of its own dialog may come first
                frame = await ws.recv()
            assert frame["code"] == "not_found", topic

    r = await client.get(f"/api/messages/{reply_id}", headers=bearer(token))
    assert r.json()["status"] == "completed"
    r = await client.get(f"/api/dialogs/{dialog_id}/messages", headers=bearer(token))
    assert [m["role"] for m in r.json()["items"]] == ["user", "assistant"]
    r = await client.get(f"/api/dialogs/{dialog_id}", headers=bearer(token))
    assert r.status_code == 200 and r.json()["via_widget"] is True

    # The owner's own dialog and messages do not exist for the visitor.
    for method, path in (
        ("GET", f"/api/dialogs/{owners_dialog}"),
        ("GET", f"/api/dialogs/{owners_dialog}/messages"),
        ("POST", f"/api/dialogs/{owners_dialog}/messages"),
        ("GET", f"/api/messages/{owners_reply}"),
        ("GET", "/api/dialogs/not-a-uuid/messages"),
    ):
        r = await client.request(method, path, json={"content": "x"}, headers=bearer(token))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path, r.text)
    # Every endpoint that is not one of its dialog's refuses the token.
    for method, path in (
        ("GET", "/api/dialogs"),
        ("POST", "/api/dialogs"),
        ("GET", "/api/users/me"),
        ("GET", "/api/assistants"),
        ("GET", f"/api/assistants/{shop['id']}"),
        ("GET", "/api/balance"),
        ("POST", f"/api/messages/{reply_id}/cancel"),
        ("GET", "/api/analytics/usage"),
    ):
        r = await client.request(method, path, headers=bearer(token))
        assert r.status_code == 401, (method, path, r.text)
    # The owner still reads everything, the widget dialog included.
    assert (await poll_reply(client, owner, owners_reply))["status"] == "completed"


async def test_returning_visitor_continues_and_owner_sees_widget_dialogs(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "lister")
    shop = await widget_assistant(client, owner, SHOP)
    first = (await open_session(client, shop["public_key"])).json()
    again = (await open_session(client, shop["public_key"], resume_token=first["resume_token"])).json()
    assert again["dialog_id"] == first["dialog_id"]
    assert again["session_token"] != first["session_token"]
    other = (await open_session(client, shop["public_key"])).json()
    assert other["dialog_id"] != first["dialog_id"] and other["resume_token"] != first["resume_token"]

    r = await client.get("/api/dialogs", params={"assistant_id": shop["id"]}, headers=owner.headers)
    listed = {d["id"]: d for d in r.json()["items"]}
    assert set(listed) == {first["dialog_id"], other["dialog_id"]}
    assert listed[first["dialog_id"]]["visitor"].startswith("Visitor ")
    assert all(d["via_widget"] for d in listed.values())
    _, plain = await new_dialog(client, owner)
    r = await client.get(f"/api/dialogs/{plain}", headers=owner.headers)
    assert r.json()["via_widget"] is False and r.json()["visitor"] is None


async def test_sessions_are_rate_limited_per_assistant(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "busy")
    busy = await widget_assistant(client, owner, SHOP)
    quiet = await widget_assistant(client, owner, SHOP)
    statuses = [(await open_session(client, busy["public_key"])).status_code for _ in range(6)]
    assert statuses == [201] * 6
    r = await open_session(client, busy["public_key"])
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    assert (await open_session(client, quiet["public_key"])).status_code == 201, "other assistants unaffected"


async def test_cross_origin_calls_and_the_iframe_page(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "framer")
    shop = await widget_assistant(client, owner, SHOP, "https://www.shop.example")
    r = await client.options(
        f"/api/widget/{shop['public_key']}/sessions",
        headers={"Origin": SHOP, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    )  # fmt: skip
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
    r = await open_session(client, shop["public_key"])
    assert r.headers["access-control-allow-origin"] == "*"

    r = await client.get(f"/widget/{shop['public_key']}", params={"title": "<Help>"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert f"frame-ancestors {SHOP} https://www.shop.example" in policy
    assert 'data-title="&lt;Help&gt;"' in r.text and "<Help>" not in r.text
    # The page is served from the API's own origin; its sessions count as the iframe's.
    r = await open_session(client, shop["public_key"], str(client.base_url).rstrip("/"))
    assert r.status_code == 201, r.text

    closed = await widget_assistant(client, owner)
    r = await client.get(f"/widget/{closed['public_key']}")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert (await client.get("/widget/pk_unknown")).status_code == 404

    r = await client.get("/widget.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "attachShadow" in r.text and len(r.content) < 32_000
