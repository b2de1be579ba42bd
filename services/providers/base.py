"""What every chat provider offers: a stream of text deltas, then the usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class ContextPassage:
    """A knowledge-base passage given to the model (already in the prompt; the offline provider quotes it)."""

    text: str
    source: str = ""


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    temperature: float
    max_tokens: int
    # None: no knowledge base was searched; empty: it was, and nothing matched.
    context_passages: tuple[ContextPassage, ...] | None = None


class ProviderError(Exception):
    """A provider failure. ``retryable`` faults (429, 5xx, timeouts, dropped connections) may be retried
    with backoff; the others (bad key, bad request) never are."""

    def __init__(self, code: str, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


def unavailable(message: str, retry_after: float | None = None) -> ProviderError:
    return ProviderError("llm_unavailable", message, retryable=True, retry_after=retry_after)


def auth_failed(message: str) -> ProviderError:
    return ProviderError("llm_auth_failed", message, retryable=False)


def bad_request(message: str) -> ProviderError:
    return ProviderError("llm_bad_request", message, retryable=False)


class ChatProvider(Protocol):
    def stream(self, request: ChatRequest) -> AsyncIterator[str | Usage]:
        """Yield text deltas as they arrive, and at most one ``Usage`` (last). Raise ``ProviderError``."""
        ...

    async def aclose(self) -> None: ...
