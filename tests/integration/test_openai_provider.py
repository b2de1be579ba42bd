"""The OpenAI-compatible provider: the real ``openai`` client over sockets against the fake server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import openai
import pytest

from services.providers.base import ChatMessage, ChatRequest, ProviderError, Usage
from services.providers.openai_compat import OpenAICompatibleProvider
from tests.fixtures.fake_llm import FakeLLMServer

API_KEY = "test-key"


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def provider(llm: FakeLLMServer) -> AsyncIterator[OpenAICompatibleProvider]:
    provider = OpenAICompatibleProvider(llm.base_url, API_KEY, connect_timeout=1.0, read_timeout=5.0)
    yield provider
    await provider.aclose()


def request(content: str, max_tokens: int = 1000, temperature: float = 0.7) -> ChatRequest:
    messages: list[ChatMessage] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": content},
    ]
    return ChatRequest(model="fake-model", messages=messages, temperature=temperature, max_tokens=max_tokens)


async def collect(provider: OpenAICompatibleProvider, req: ChatRequest) -> tuple[list[str], list[Usage]]:
    deltas: list[str] = []
    usages: list[Usage] = []
    async for item in provider.stream(req):
        if isinstance(item, Usage):
            usages.append(item)
        else:
            deltas.append(item)
    return deltas, usages


async def failure(provider: OpenAICompatibleProvider, req: ChatRequest) -> tuple[ProviderError, list[str]]:
    deltas: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for item in provider.stream(req):
            if isinstance(item, str):
                deltas.append(item)
    return caught.value, deltas


async def test_stream_matches_the_completion_and_reports_usage(
    llm: FakeLLMServer, provider: OpenAICompatibleProvider
) -> None:
    req = request("tell me something")
    deltas, usages = await collect(provider, req)

    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key=API_KEY, max_retries=0) as client:
        completion = await client.chat.completions.create(model=req.model, messages=req.messages)
    assert completion.usage is not None

    assert len(deltas) == 50
    assert all(deltas)
    assert "".join(deltas) == completion.choices[0].message.content
    assert usages == [Usage(prompt_tokens=6, completion_tokens=50)]
    assert usages[0].prompt_tokens == completion.usage.prompt_tokens

    sent = llm.recent_requests[0]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert (sent["temperature"], sent["max_tokens"]) == (0.7, 1000)


async def test_reply_cut_by_max_tokens_still_completes(provider: OpenAICompatibleProvider) -> None:
    deltas, usages = await collect(provider, request("hello", max_tokens=3))
    assert "".join(deltas) == "Echo: hello lorem"
    assert usages == [Usage(prompt_tokens=4, completion_tokens=3)]


async def test_rate_limit_is_retryable_with_retry_after(provider: OpenAICompatibleProvider) -> None:
    error, _ = await failure(provider, request("hi [[fault:429]]"))
    assert (error.code, error.retryable, error.retry_after) == ("llm_unavailable", True, 0.0)
    assert "Rate limit" in error.message


async def test_counted_rate_limit_then_success(
    llm: FakeLLMServer, provider: OpenAICompatibleProvider
) -> None:
    req = request("twice [[fault:429x2]]")
    for _ in range(2):
        error, _ = await failure(provider, req)
        assert error.retryable
    deltas, usages = await collect(provider, req)
    assert "".join(deltas).startswith("Echo: twice")
    assert len(usages) == 1
    assert llm.stats == {"fault_429": 2, "ok": 1}


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retryable(provider: OpenAICompatibleProvider, status: int) -> None:
    error, _ = await failure(provider, request(f"hi [[fault:{status}]]"))
    assert (error.code, error.retryable) == ("llm_unavailable", True)


async def test_no_answer_times_out_as_retryable(llm: FakeLLMServer) -> None:
    provider = OpenAICompatibleProvider(llm.base_url, API_KEY, connect_timeout=1.0, read_timeout=0.3)
    try:
        started = time.monotonic()
        error, _ = await failure(provider, request("hi [[fault:timeout]]"))
        assert time.monotonic() - started < 1.5
    finally:
        await provider.aclose()
    assert (error.code, error.retryable) == ("llm_unavailable", True)
    assert llm.stats["timeout"] == 1


async def test_stall_mid_stream_times_out_as_retryable(llm: FakeLLMServer) -> None:
    provider = OpenAICompatibleProvider(llm.base_url, API_KEY, connect_timeout=1.0, read_timeout=0.3)
    try:
        error, deltas = await failure(provider, request("hi [[delay_ms:5000]]"))
    finally:
        await provider.aclose()
    assert deltas == ["Echo:"]
    assert (error.code, error.retryable) == ("llm_unavailable", True)


async def test_dropped_connection_mid_stream_is_retryable(provider: OpenAICompatibleProvider) -> None:
    error, deltas = await failure(provider, request("hi [[fault:drop]]"))
    assert deltas == ["Echo:", " hi", " lorem"]
    assert (error.code, error.retryable) == ("llm_unavailable", True)


async def test_stream_ending_without_finish_is_retryable(provider: OpenAICompatibleProvider) -> None:
    error, deltas = await failure(provider, request("hi [[fault:truncate]]"))
    assert len(deltas) == 3
    assert (error.code, error.retryable) == ("llm_unavailable", True)


async def test_error_event_mid_stream_is_retryable(provider: OpenAICompatibleProvider) -> None:
    error, deltas = await failure(provider, request("hi [[fault:stream_error]]"))
    assert len(deltas) == 3
    assert (error.code, error.retryable) == ("llm_unavailable", True)
    assert "mid-stream" in error.message


async def test_refused_connection_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAICompatibleProvider(
        f"http://127.0.0.1:{port}/v1", API_KEY, connect_timeout=1.0, read_timeout=1.0
    )
    try:
        error, _ = await failure(provider, request("hi"))
    finally:
        await provider.aclose()
    assert (error.code, error.retryable) == ("llm_unavailable", True)


async def test_wrong_key_is_auth_failed_and_final(llm: FakeLLMServer) -> None:
    provider = OpenAICompatibleProvider(llm.base_url, "wrong-key", connect_timeout=1.0, read_timeout=1.0)
    try:
        error, _ = await failure(provider, request("hi"))
    finally:
        await provider.aclose()
    assert (error.code, error.retryable) == ("llm_auth_failed", False)
    assert "wrong-key" not in error.message


async def test_forbidden_is_auth_failed(provider: OpenAICompatibleProvider) -> None:
    error, _ = await failure(provider, request("hi [[fault:403]]"))
    assert (error.code, error.retryable) == ("llm_auth_failed", False)


async def test_invalid_request_is_bad_request(provider: OpenAICompatibleProvider) -> None:
    error, _ = await failure(provider, request("hi", temperature=3.0))
    assert (error.code, error.retryable) == ("llm_bad_request", False)
    assert "temperature" in error.message


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_client_errors_are_bad_request(provider: OpenAICompatibleProvider, status: int) -> None:
    error, _ = await failure(provider, request(f"hi [[fault:{status}]]"))
    assert (error.code, error.retryable) == ("llm_bad_request", False)


async def test_endpoint_without_key_needs_no_key() -> None:
    async with FakeLLMServer(tokens=4) as open_llm:
        provider = OpenAICompatibleProvider(open_llm.base_url, None, connect_timeout=1.0, read_timeout=1.0)
        try:
            deltas, _ = await collect(provider, request("hi"))
        finally:
            await provider.aclose()
    assert "".join(deltas) == "Echo: hi lorem ipsum"


async def test_one_provider_serves_many_concurrent_streams(
    llm: FakeLLMServer, provider: OpenAICompatibleProvider
) -> None:
    req = request("together [[tokens:20]] [[delay_ms:5]]")
    results = await asyncio.gather(*(collect(provider, req) for _ in range(150)))
    assert all(len(deltas) == 20 and len(usages) == 1 for deltas, usages in results)
    assert llm.stats == {"ok": 150}


async def test_abandoned_stream_releases_the_request(
    llm: FakeLLMServer, provider: OpenAICompatibleProvider
) -> None:
    stream = provider.stream(request("hi [[delay_ms:20]]"))
    assert await anext(stream) == "Echo:"
    await stream.aclose()  # type: ignore[attr-defined]
    deltas, _ = await collect(provider, request("after [[tokens:2]]"))
    assert deltas == ["Echo:", " after"]
