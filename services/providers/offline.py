"""The provider used with no language model configured: a fixed answer, streamed like a model.

It lets the whole pipeline (workers, events, billing, the widget) run with no key and no network.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from services.providers.base import ChatRequest, ContextPassage, Usage
from services.providers.tokens import estimate_tokens

INTRO = "I am running in offline mode, so this answer comes without a language model."
NOTHING_MATCHES = (
    "I found nothing in the knowledge base that matches your question, so I cannot answer it from there."
)


def offline_answer(last_user_message: str, context_passages: Sequence[str | ContextPassage] = ()) -> str:
    """The deterministic reply: the user's words back, then the retrieved passages quoted, numbered and
    attributed to their documents. (When a searched knowledge base had nothing, the provider adds
    ``NOTHING_MATCHES``.)"""
    parts = [INTRO, f"You wrote: {' '.join(last_user_message.split())}"]
    if context_passages:
        parts.append("From the knowledge base:")
        for i, passage in enumerate(context_passages, start=1):
            if isinstance(passage, str):
                passage = ContextPassage(passage)
            quoted = f'[{i}] "{" ".join(passage.text.split())}"'
            parts.append(f"{quoted} (from {passage.source})" if passage.source else quoted)
    return "\n".join(parts)


class OfflineProvider:
    def __init__(self, token_delay_ms: float = 20.0, context_passages: Sequence[str] = ()) -> None:
        self._delay = token_delay_ms / 1000
        self._context_passages = tuple(context_passages)

    async def stream(
        self, request: ChatRequest, context_passages: Sequence[str] | None = None
    ) -> AsyncIterator[str | Usage]:
        last_user = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
        passages: Sequence[str | ContextPassage] = (
            context_passages
            if context_passages is not None
            else request.context_passages or self._context_passages
        )
        answer = offline_answer(last_user, passages)
        if request.context_passages is not None and not passages:
            answer = f"{answer}\n{NOTHING_MATCHES}"
        pieces = _pieces(answer)[: max(1, request.max_tokens)]
        for i, piece in enumerate(pieces):
            if i and self._delay > 0:
                await asyncio.sleep(self._delay)
            yield piece
        prompt = sum(estimate_tokens(m["content"]) for m in request.messages)
        yield Usage(prompt_tokens=prompt, completion_tokens=estimate_tokens("".join(pieces)))

    async def aclose(self) -> None:
        return None


def _pieces(text: str) -> list[str]:
    """Word-by-word deltas that join back to ``text`` exactly (each word carries the space before it)."""
    pieces: list[str] = []
    start = 0
    for i in range(1, len(text)):
        if text[i] in " \n" and text[i - 1] not in " \n":
            pieces.append(text[start:i])
            start = i
    pieces.append(text[start:])
    return [p for p in pieces if p]
