"""Prompt assembly: the system prompt, as much recent history as the token budget allows, the new message."""

from __future__ import annotations

from collections.abc import Sequence

from services.providers.base import ChatMessage
from services.providers.tokens import estimate_tokens

# Per-message framing tokens that chat formats add around each message's content.
MESSAGE_OVERHEAD_TOKENS = 4


def message_tokens(content: str, tokens: int | None = None) -> int:
    """A message's cost in the prompt; ``tokens``, when known, is its content's estimate stored with it."""
    return (estimate_tokens(content) if tokens is None else tokens) + MESSAGE_OVERHEAD_TOKENS


# A history message: (role, content), or (role, content, its stored token estimate or None).
HistoryItem = tuple[str, str] | tuple[str, str, int | None]


KNOWLEDGE_HEADER = (
    "Answer from these passages of the knowledge base when they are relevant, and cite them by their"
    " number, e.g. [1]. If they do not contain the answer, say so."
)


def knowledge_block(passages: Sequence[tuple[str, str]], budget_tokens: int) -> tuple[str, int]:
    """The numbered passages ((source, text), best first) that fit ``budget_tokens``, as a system prompt
    section, and how many of them it holds."""
    lines = [KNOWLEDGE_HEADER]
    budget = budget_tokens - message_tokens(KNOWLEDGE_HEADER)
    used = 0
    for source, text in passages:
        line = f"[{used + 1}] ({source}) {' '.join(text.split())}"
        cost = estimate_tokens(line) + 1
        if cost > budget:
            break
        budget -= cost
        lines.append(line)
        used += 1
    return ("\n".join(lines) if used else ""), used


def build_prompt(
    system_prompt: str,
    history: Sequence[HistoryItem],
    new_message: str,
    context_tokens: int,
    max_tokens: int,
    knowledge: str = "",
) -> list[ChatMessage]:
    """``history`` is oldest first, without the new message; a stored token estimate spares estimating it.

    Older turns that do not fit ``context_tokens - max_tokens`` are dropped, the newest kept; the system
    prompt, the ``knowledge`` section (appended to it) and the new message always stay."""
    if knowledge:
        system_prompt = f"{system_prompt}\n\n{knowledge}" if system_prompt else knowledge
    budget = context_tokens - max_tokens - message_tokens(new_message)
    if system_prompt:
        budget -= message_tokens(system_prompt)
    kept: list[ChatMessage] = []
    for item in reversed(history):
        role, content = item[0], item[1]
        cost = message_tokens(content, item[2] if len(item) > 2 else None)
        if cost > budget:
            break
        budget -= cost
        kept.append({"role": "assistant" if role == "assistant" else "user", "content": content})
    kept.reverse()
    prompt: list[ChatMessage] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*prompt, *kept, {"role": "user", "content": new_message}]
