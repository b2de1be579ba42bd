"""One chat turn through the real processes: uvicorn → Redis broker → Celery llm worker → fake LLM →
Redis event bus → WebSocket, and the polling path beside it."""

from __future__ import annotations

import asyncio

import httpx

from tests.fixtures.api import WsClient, new_dialog, poll_reply, post_message, reply_text, signup
from tests.fixtures.stack import Stack


async def test_reply_streams_over_websocket_and_matches_polling(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    alice = await signup(client, "alice")
    _, dialog_id = await new_dialog(client, alice, system_prompt="Be brief.")
    async with WsClient(stack.ws_url, alice.access_token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        posted = await post_message(client, alice, dialog_id, "hello there [[tokens:30]]")
        reply_id = posted["reply"]["id"]
        assert posted["reply"]["status"] == "queued"
        frames = await ws.until("reply.completed", reply_id)

    types = [f["type"] for f in frames if f.get("data", {}).get("reply_id") == reply_id]
    assert types[0] == "reply.started"
    assert types[-1] == "reply.completed"
    assert types.count("reply.delta") >= 1
    completed = frames[-1]["data"]
    assert completed["content"] and reply_text(frames, reply_id) == completed["content"]
    assert completed["usage"]["completion_tokens"] == 30
    ids = [f["id"] for f in frames]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))), "events arrive in id order"

    polled = await poll_reply(client, alice, reply_id)
    assert polled["status"] == "completed"
    assert polled["content"] == completed["content"]
    assert polled["usage"] == completed["usage"]
    assert polled["completed_at"] is not None

    r = await client.get(f"/api/dialogs/{dialog_id}/messages", headers=alice.headers)
    assert [m["role"] for m in r.json()["items"]] == ["user", "assistant"]


async def test_history_is_sent_to_the_model(client: httpx.AsyncClient) -> None:
    bob = await signup(client, "bob")
    _, dialog_id = await new_dialog(client, bob)
    first = await post_message(client, bob, dialog_id, "my name is Bob [[tokens:5]]")
    answer = await poll_reply(client, bob, first["reply"]["id"])
    assert answer["status"] == "completed"
    question = "what is my name? [[tokens:5]]"
    second = await post_message(client, bob, dialog_id, question)
    done = await poll_reply(client, bob, second["reply"]["id"])
    # The fake LLM counts the words of every message it received as prompt tokens: the second prompt is
    # the first one, then the first answer, then the new question.
    expected = answer["usage"]["prompt_tokens"] + len(answer["content"].split()) + len(question.split())
    assert done["usage"]["prompt_tokens"] == expected


async def test_polling_only_client_gets_the_reply(client: httpx.AsyncClient) -> None:
    carol = await signup(client, "carol")
    _, dialog_id = await new_dialog(client, carol)
    posted = await post_message(client, carol, dialog_id, "poll me")
    r = await client.get(f"/api/messages/{posted['reply']['id']}", headers=carol.headers)
    assert r.status_code == 200 and r.json()["status"] in ("queued", "generating", "completed")
    done = await poll_reply(client, carol, posted["reply"]["id"])
    assert done["status"] == "completed" and done["content"]


async def test_concurrent_dialogs_each_get_their_own_reply(client: httpx.AsyncClient) -> None:
    dave = await signup(client, "dave")
    dialogs = [(await new_dialog(client, dave))[1] for _ in range(5)]
    posted = await asyncio.gather(
        *(post_message(client, dave, d, f"question {i}") for i, d in enumerate(dialogs))
    )
    replies = await asyncio.gather(*(poll_reply(client, dave, p["reply"]["id"]) for p in posted))
    for i, reply in enumerate(replies):
        assert reply["status"] == "completed"
        assert f"question {i}" in reply["content"]


async def test_reconnect_mid_stream_replays_every_missed_delta_once(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    erin = await signup(client, "erin")
    _, dialog_id = await new_dialog(client, erin)
    topic = f"dialog:{dialog_id}"
    async with WsClient(stack.ws_url, erin.access_token) as ws:
        await ws.subscribe(topic)
        posted = await post_message(client, erin, dialog_id, "stream slowly [[tokens:60]] [[delay_ms:25]]")
        reply_id = posted["reply"]["id"]
        before = []
        while len([f for f in before if f["type"] == "reply.delta"]) < 5:
            before.append(await ws.recv())
    # The socket is gone while the reply keeps streaming; a new one resumes from the last event seen.
    async with WsClient(stack.ws_url, erin.access_token) as ws:
        replayed = await ws.subscribe(topic, last_event_id=before[-1]["id"])
        after = replayed + await ws.until("reply.completed", reply_id)

    ids = [f["id"] for f in before + after]
    assert len(ids) == len(set(ids)), "no event is delivered twice"
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    completed = after[-1]["data"]
    assert reply_text(before + after, reply_id) == completed["content"]
    assert len(completed["content"].split()) == 60
