"""The offline provider, the token estimate, and the provider factory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from core.settings import Settings
from services.providers import close_providers, get_provider
from services.providers.base import ChatMessage, ChatRequest, ProviderError, Usage
from services.providers.offline import OfflineProvider
from services.providers.openai_compat import OpenAICompatibleProvider, _sse_data
from services.providers.tokens import estimate_tokens


def request(content: str, max_tokens: int = 1000) -> ChatRequest:
    messages: list[ChatMessage] = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": content},
    ]
    return ChatRequest(model="offline", messages=messages, temperature=0.0, max_tokens=max_tokens)


async def collect(stream: AsyncIterator[str | Usage]) -> tuple[list[str], list[Usage]]:
    items = [item async for item in stream]
    return [i for i in items if isinstance(i, str)], [i for i in items if isinstance(i, Usage)]


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("hello there") == 3
    assert estimate_tokens("Hello, world!") == 5
    assert estimate_tokens("word " * 100) == 130


async def test_offline_answer_is_deterministic_and_streamed_word_by_word() -> None:
    provider = OfflineProvider(token_delay_ms=0)
    deltas, usages = await collect(provider.stream(request("hello   there")))
    again, _ = await collect(provider.stream(request("hello   there")))

    text = "".join(deltas)
    assert deltas == again
    assert text.startswith("I am running in offline mode")
    assert text.endswith("You wrote: hello there")
    assert len(deltas) == len(text.split())
    prompt = sum(
        estimate_tokens(m) for m in ("Be kind.", "earlier question", "earlier answer", "hello   there")
    )
    assert usages == [Usage(prompt_tokens=prompt, completion_tokens=estimate_tokens(text))]


async def test_offline_answer_quotes_context_passages() -> None:
    provider = OfflineProvider(token_delay_ms=0, context_passages=["Refunds take 5 days."])
    deltas, _ = await collect(provider.stream(request("refund?")))
    assert "".join(deltas).endswith('From the knowledge base:\n[1] "Refunds take 5 days."')

    deltas, _ = await collect(
        provider.stream(request("refund?"), context_passages=["Per\nrequest.", "Second."])
    )
    assert "".join(deltas).endswith('[1] "Per request."\n[2] "Second."')


async def test_offline_respects_max_tokens_and_delay() -> None:
    provider = OfflineProvider(token_delay_ms=30)
    started = time.monotonic()
    deltas, usages = await collect(provider.stream(request("hi", max_tokens=4)))
    assert deltas == ["I", " am", " running", " in"]
    assert time.monotonic() - started >= 0.09
    assert usages[0].completion_tokens == estimate_tokens("I am running in")


@pytest.fixture
async def settings() -> AsyncIterator[Settings]:
    yield Settings(llm_base_url="http://127.0.0.1:1/v1", llm_api_key="k", offline_token_delay_ms=0)
    await close_providers()


async def test_factory_caches_one_provider_per_name_and_endpoint(settings: Settings) -> None:
    offline = get_provider("offline", settings)
    assert isinstance(offline, OfflineProvider)
    assert get_provider("offline", settings) is offline

    remote = get_provider("openai", settings)
    assert isinstance(remote, OpenAICompatibleProvider)
    assert get_provider("openai", settings) is remote
    other = settings.model_copy(update={"llm_base_url": "http://127.0.0.1:2/v1"})
    assert get_provider("openai", other) is not remote


async def test_factory_requires_a_key_for_the_openai_api(settings: Settings) -> None:
    no_key = settings.model_copy(update={"llm_base_url": None, "llm_api_key": None})
    with pytest.raises(ProviderError) as caught:
        get_provider("openai", no_key)
    assert (caught.value.code, caught.value.retryable) == ("llm_auth_failed", False)
    assert isinstance(
        get_provider("openai", no_key.model_copy(update={"llm_api_key": "k"})), OpenAICompatibleProvider
    )

    with pytest.raises(ProviderError) as caught:
        get_provider("nonsense", settings)
    assert caught.value.code == "llm_not_configured"


async def test_sse_data_lines_split_across_chunks_and_crlf() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b'data: {"a"', b": 1}\r\n\r\n: comment\r\nda", b"ta: [DONE]"):
            yield part

    assert [data async for data in _sse_data(chunks())] == [b'{"a": 1}', b"[DONE]"]
