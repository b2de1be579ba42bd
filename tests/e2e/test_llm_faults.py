"""What users see when the model misbehaves: retries that heal, failures with a code, cancellation."""

from __future__ import annotations

import uuid

import httpx

from tests.fixtures.api import WsClient, new_dialog, poll_reply, post_message, reply_text, signup
from tests.fixtures.stack import FakeLLM, Stack


def stats(fake_llm: FakeLLM) -> dict:
    return httpx.get(fake_llm.control_url.replace("_control", "_stats"), timeout=5).json()


async def test_rate_limits_and_server_errors_are_retried_until_success(client: httpx.AsyncClient) -> None:
    user = await signup(client, "retry")
    _, dialog_id = await new_dialog(client, user)
    unique = uuid.uuid4().hex[:6]
    for fault in ("429x2", "500x1", "dropx1"):
        posted = await post_message(client, user, dialog_id, f"{unique} [[fault:{fault}]] [[tokens:12]]")
        done = await poll_reply(client, user, posted["reply"]["id"])
        assert done["status"] == "completed", (fault, done)
        assert done["usage"]["completion_tokens"] == 12


async def test_persistent_outage_fails_with_llm_unavailable(client: httpx.AsyncClient, stack: Stack) -> None:
    user = await signup(client, "outage")
    _, dialog_id = await new_dialog(client, user)
    async with WsClient(stack.ws_url, user.access_token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        posted = await post_message(client, user, dialog_id, "[[fault:503]]")
        frames = await ws.until("reply.failed", posted["reply"]["id"])
    assert frames[-1]["data"]["error"]["code"] == "llm_unavailable"
    done = await poll_reply(client, user, posted["reply"]["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "llm_unavailable"


async def test_bad_api_key_fails_at_once_without_retries(
    client: httpx.AsyncClient, fake_llm: FakeLLM
) -> None:
    user = await signup(client, "badkey")
    _, dialog_id = await new_dialog(client, user)
    marker = uuid.uuid4().hex[:8]
    before = stats(fake_llm)
    posted = await post_message(client, user, dialog_id, f"{marker} [[fault:401]]")
    done = await poll_reply(client, user, posted["reply"]["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "llm_auth_failed"
    after = stats(fake_llm)
    assert after["requests"] - before["requests"] == 1, "a 401 is never retried"


async def test_timeouts_are_retried_then_fail(client: httpx.AsyncClient) -> None:
    user = await signup(client, "timeout")
    _, dialog_id = await new_dialog(client, user)
    posted = await post_message(
        client, user, dialog_id, f"{uuid.uuid4().hex} [[fault:timeoutx1]] [[tokens:5]]"
    )
    done = await poll_reply(client, user, posted["reply"]["id"], timeout=60)
    assert done["status"] == "completed"


async def test_cancel_stops_generation_with_the_partial_text(client: httpx.AsyncClient, stack: Stack) -> None:
    user = await signup(client, "cancel")
    _, dialog_id = await new_dialog(client, user)
    async with WsClient(stack.ws_url, user.access_token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        posted = await post_message(client, user, dialog_id, "[[tokens:400]] [[delay_ms:20]]")
        reply_id = posted["reply"]["id"]
        await ws.until("reply.delta", reply_id)
        r = await client.post(f"/api/messages/{reply_id}/cancel", headers=user.headers)
        assert r.status_code == 202
        frames = await ws.until("reply.cancelled", reply_id)
    partial = frames[-1]["data"]["content"]
    assert partial and reply_text(ws.frames, reply_id) == partial
    done = await poll_reply(client, user, reply_id)
    assert done["status"] == "cancelled" and done["content"] == partial
    assert len(partial.split()) < 400
    r = await client.post(f"/api/messages/{reply_id}/cancel", headers=user.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
