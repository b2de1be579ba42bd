"""Split cleaned text into token-aware chunks that overlap, so a passage cut at a boundary still appears
whole in one of them.

Units are sentences (paragraph ends always end a sentence); a sentence longer than a chunk is split by
words. Chunks are packed up to ``max_tokens`` and each starts with the last ``overlap_tokens`` worth of
sentences of the one before. Token counts use the same estimate as prompt budgeting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.providers.tokens import estimate_tokens

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=\S)")


@dataclass(frozen=True)
class TextChunk:
    position: int
    text: str
    token_count: int


def _units(text: str, max_tokens: int) -> list[tuple[str, int]]:
    units: list[tuple[str, int]] = []
    for paragraph in text.split("\n\n"):
        paragraph = " ".join(paragraph.split())
        for sentence in _SENTENCE_END.split(paragraph):
            if not sentence:
                continue
            tokens = estimate_tokens(sentence)
            if tokens <= max_tokens:
                units.append((sentence, tokens))
                continue
            words, piece = sentence.split(" "), list[str]()
            for word in words:
                if piece and estimate_tokens(" ".join([*piece, word])) > max_tokens:
                    units.append((" ".join(piece), estimate_tokens(" ".join(piece))))
                    piece = []
                piece.append(word)
            if piece:
                units.append((" ".join(piece), estimate_tokens(" ".join(piece))))
    return units


def chunk_text(text: str, max_tokens: int = 200, overlap_tokens: int = 40) -> list[TextChunk]:
    if max_tokens < 1 or not 0 <= overlap_tokens < max_tokens:
        raise ValueError("need max_tokens >= 1 and 0 <= overlap_tokens < max_tokens")
    chunks: list[TextChunk] = []
    current: list[tuple[str, int]] = []
    fresh = 0  # units in ``current`` not yet emitted in an earlier chunk

    def emit() -> None:
        body = " ".join(u for u, _ in current)
        chunks.append(TextChunk(len(chunks), body, estimate_tokens(body)))

    for unit in _units(text, max_tokens):
        if current and sum(t for _, t in current) + unit[1] > max_tokens:
            emit()
            # Keep trailing units as overlap, as long as they leave room for the new one.
            kept: list[tuple[str, int]] = []
            budget = min(overlap_tokens, max_tokens - unit[1])
            for prev in reversed(current):
                if prev[1] > budget:
                    break
                budget -= prev[1]
                kept.insert(0, prev)
            current, fresh = kept, 0
        current.append(unit)
        fresh += 1
    if current and fresh:
        emit()
    return chunks
