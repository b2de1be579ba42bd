"""The fake OpenAI-compatible server, spoken to over plain HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.fixtures.fake_llm import FakeLLMProcess, FakeLLMServer, reply_words

API_KEY = "test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def body(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": content}], **extra}


async def post(
    http: aiohttp.ClientSession, llm: FakeLLMServer, payload: dict[str, Any]
) -> aiohttp.ClientResponse:
    response = await http.post(f"{llm.base_url}/chat/completions", json=payload, headers=AUTH)
    await response.read()
    return response


async def stream_events(
    http: aiohttp.ClientSession, llm: FakeLLMServer, payload: dict[str, Any]
) -> list[Any]:
    events: list[Any] = []
    async with http.post(f"{llm.base_url}/chat/completions", json=payload, headers=AUTH) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for line in response.content:
            if line.startswith(b"data: "):
                data = line[6:].strip()
                events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return events


def test_reply_words_are_deterministic_and_sized() -> None:
    assert reply_words("hello there", 5) == ["Echo:", " hello", " there", " lorem", " ipsum"]
    assert reply_words("one two three", 2) == ["Echo:", " one"]
    assert reply_words("anything", 0) == []


async def test_verbatim_replies_with_the_message_itself_line_breaks_kept(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    text = "Steps:\n\n- one\n- `two`\n\n```\nprint(1)\n```"
    events = await stream_events(http, llm, body(f"[[verbatim:1]]{text}", stream=True))
    pieces = [c["choices"][0]["delta"].get("content") or "" for c in events[:-1]]
    assert "".join(pieces) == text and len([p for p in pieces if p]) == 8


async def test_stream_has_openai_chunk_format_with_usage(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    payload = body("hello there", stream=True, stream_options={"include_usage": True})
    events = await stream_events(http, llm, payload)

    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "fake-model" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert len(content) == 50
    assert "".join(content).startswith("Echo: hello there lorem")
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 50, "total_tokens": 52}
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_stream_without_include_usage_has_no_usage(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    events = await stream_events(http, llm, body("hi [[tokens:3]]", stream=True))
    assert events[-1] == "[DONE]"
    assert all("usage" not in c for c in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


async def test_non_streamed_completion_matches_the_stream(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    response = await post(http, llm, body("same words [[tokens:7]]"))
    completion = await response.json()
    events = await stream_events(http, llm, body("same words [[tokens:7]]", stream=True))

    assert completion["object"] == "chat.completion"
    text = completion["choices"][0]["message"]["content"]
    assert text == "Echo: same words lorem ipsum dolor sit"
    assert text == "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1])
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"] == {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}


async def test_max_tokens_cuts_the_reply_with_finish_reason_length(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    completion = await (await post(http, llm, body("hello", max_tokens=4))).json()
    assert completion["choices"][0]["message"]["content"] == "Echo: hello lorem ipsum"
    assert completion["choices"][0]["finish_reason"] == "length"


async def test_prompt_tokens_count_words_of_all_messages(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    payload = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief please"},
            {"role": "user", "content": [{"type": "text", "text": "two words"}]},
        ],
    }
    completion = await (await post(http, llm, payload)).json()
    assert completion["usage"]["prompt_tokens"] == 5


async def test_wrong_key_gets_401_with_openai_error(http: aiohttp.ClientSession, llm: FakeLLMServer) -> None:
    response = await http.post(
        f"{llm.base_url}/chat/completions", json=body("hi"), headers={"Authorization": "Bearer nope"}
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_api_key"
    assert llm.stats["unauthorized"] == 1


async def test_invalid_request_gets_400(http: aiohttp.ClientSession, llm: FakeLLMServer) -> None:
    response = await post(http, llm, body("hi", temperature=5))
    assert response.status == 400
    assert (await response.json())["error"]["type"] == "invalid_request_error"
    response = await post(http, llm, {"model": "m", "messages": []})
    assert response.status == 400


@pytest.mark.parametrize("status", [429, 500, 503, 404])
async def test_status_faults(http: aiohttp.ClientSession, llm: FakeLLMServer, status: int) -> None:
    response = await post(http, llm, body(f"hi [[fault:{status}]]", stream=True))
    assert response.status == status
    assert "message" in (await response.json())["error"]
    assert (response.headers.get("retry-after") == "0") is (status == 429)
    assert llm.stats[f"fault_{status}"] == 1


async def test_counted_fault_fails_n_times_per_exact_message(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    statuses = [(await post(http, llm, body("again [[fault:429x2]]"))).status for _ in range(4)]
    other = await post(http, llm, body("other [[fault:429x2]]"))
    assert statuses == [429, 429, 200, 200]
    assert other.status == 429


async def test_timeout_fault_never_answers(http: aiohttp.ClientSession, llm: FakeLLMServer) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await http.post(
            f"{llm.base_url}/chat/completions",
            json=body("hi [[fault:timeout]]", stream=True),
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(total=0.3),
        )
    assert llm.stats["timeout"] == 1


async def test_drop_fault_closes_the_connection_mid_stream(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    lines: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(
            f"{llm.base_url}/chat/completions", json=body("hi [[fault:drop]]", stream=True), headers=AUTH
        ) as response:
            assert response.status == 200
            async for line in response.content:
                if line.startswith(b"data: "):
                    lines.append(line)
    assert 1 <= len(lines) <= 4  # the role chunk and at most three content chunks
    assert llm.stats["drop"] == 1


async def test_stall_fault_sends_a_few_chunks_then_nothing(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    lines: list[bytes] = []
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            f"{llm.base_url}/chat/completions",
            json=body("hi [[fault:stall]]", stream=True),
            headers=AUTH,
            timeout=aiohttp.ClientTimeout(sock_read=0.5),
        ) as response:
            assert response.status == 200
            async for line in response.content:
                if line.startswith(b"data: "):
                    lines.append(line)
    assert len(lines) == 4  # the role chunk and three content chunks, then silence


async def test_chat_fault_applies_to_every_request_until_cleared(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    control = f"{llm.base_url.removesuffix('/v1')}/_control"
    async with http.post(control, json={"chat_fault": "500"}) as r:
        assert r.status == 200
    failed = [(await post(http, llm, body(f"turn {i}", stream=True))).status for i in range(3)]
    own = await post(http, llm, body("mine [[fault:429]]", stream=True))
    async with http.post(control, json={"chat_fault": None}) as r:
        assert r.status == 200
    assert failed == [500, 500, 500]
    assert own.status == 429  # a request's own directive wins
    assert (await post(http, llm, body("after", stream=True))).status == 200


async def test_truncate_fault_ends_without_finish_or_done(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    events = await stream_events(http, llm, body("hi [[fault:truncate]]", stream=True))
    assert len(events) == 4
    assert "[DONE]" not in events
    assert all(c["choices"][0]["finish_reason"] is None for c in events)


async def test_delay_directives_pace_the_stream(http: aiohttp.ClientSession, llm: FakeLLMServer) -> None:
    started = time.monotonic()
    events = await stream_events(
        http, llm, body("hi [[tokens:4]] [[delay_ms:60]] [[first_delay_ms:100]]", stream=True)
    )
    elapsed = time.monotonic() - started
    assert len(events) == 1 + 4 + 1 + 1
    assert 0.28 <= elapsed < 1.0  # 100 ms before the first token, 60 ms between the other three


async def test_control_changes_settings_and_stats_count_outcomes(
    http: aiohttp.ClientSession, llm: FakeLLMServer
) -> None:
    control = await http.post(f"{llm.base_url.removesuffix('/v1')}/_control", json={"tokens": 3})
    assert (await control.json())["tokens"] == 3
    completion = await (await post(http, llm, body("a b c d"))).json()
    assert completion["choices"][0]["message"]["content"] == "Echo: a b"
    await post(http, llm, body("x [[fault:500]]"))

    stats = await (await http.get(f"{llm.base_url.removesuffix('/v1')}/_stats")).json()
    recent = stats.pop("recent_requests")
    assert [r["messages"][-1]["content"] for r in recent] == ["a b c d", "x [[fault:500]]"]
    assert stats == {
        "requests": 2,
        "by_outcome": {"ok": 1, "fault_500": 1},
        "active_streams": 0,
        "embedding_batches": [],
    }

    bad = await http.post(f"{llm.base_url.removesuffix('/v1')}/_control", json={"nope": 1})
    assert bad.status == 400
    await http.post(f"{llm.base_url.removesuffix('/v1')}/_control", json={"reset": True})
    assert llm.stats_snapshot()["requests"] == 0


async def test_many_concurrent_streams(http: aiohttp.ClientSession, llm: FakeLLMServer) -> None:
    payload = body("load [[tokens:20]] [[delay_ms:5]]", stream=True, stream_options={"include_usage": True})
    results = await asyncio.gather(*(stream_events(http, llm, payload) for _ in range(200)))
    assert all(len(events) == 1 + 20 + 2 + 1 for events in results)
    assert llm.stats["ok"] == 200


def test_runs_as_a_separate_process() -> None:
    with FakeLLMProcess(tokens=2, api_key="k") as process:
        assert process.base_url.startswith("http://127.0.0.1:")

        async def ask() -> Any:
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as session:
                response = await session.post(f"{process.base_url}/chat/completions", json=body("hi there"))
                return await response.json()

        completion = asyncio.run(ask())
    assert completion["choices"][0]["message"]["content"] == "Echo: hi"
