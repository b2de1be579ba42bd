"""Prompt assembly: the system prompt, as much recent history as the token budget allows, the new message."""

from __future__ import annotations

from collections.abc import Sequence

from services.providers.base import ChatMessage
from services.providers.tokens import estimate_tokens

# Per-message framing tokens that chat formats add around each message's content.
MESSAGE_OVERHEAD_TOKENS = 4


def message_tokens(content: str) -> int:
    return estimate_tokens(content) + MESSAGE_OVERHEAD_TOKENS


def build_prompt(
    system_prompt: str,
    history: Sequence[tuple[str, str]],
    new_message: str,
    context_tokens: int,
    max_tokens: int,
) -> list[ChatMessage]:
    """``history`` is (role, content) oldest first, without the new message.

    Older turns that do not fit ``context_tokens - max_tokens`` are dropped, the newest kept; the system
    prompt and the new message always stay."""
    budget = context_tokens - max_tokens - message_tokens(new_message)
    if system_prompt:
        budget -= message_tokens(system_prompt)
    kept: list[ChatMessage] = []
    for role, content in reversed(history):
        cost = message_tokens(content)
        if cost > budget:
            break
        budget -= cost
        kept.append({"role": "assistant" if role == "assistant" else "user", "content": content})
    kept.reverse()
    prompt: list[ChatMessage] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*prompt, *kept, {"role": "user", "content": new_message}]
