"""Splitting an answer into Telegram messages of at most 4096 characters, on natural boundaries."""

from __future__ import annotations

import re

MAX_MESSAGE_CHARS = 4096

# Coarsest first: paragraphs, lines, sentences, words.
_BOUNDARIES = (
    re.compile(r"(?<=\n\n)"),
    re.compile(r"(?<=\n)"),
    re.compile(r"(?<=[.!?…])\s+"),
    re.compile(r" "),
)


def split_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Parts of at most ``limit`` characters whose concatenation (boundary spaces aside) is ``text``."""
    text = text.strip()
    if not text:
        return []
    return [part for part in (p.strip() for p in _split(text, limit, 0)) if part]


def _split(text: str, limit: int, level: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    if level == len(_BOUNDARIES):
        return [text[i : i + limit] for i in range(0, len(text), limit)]
    pieces = [p for p in _BOUNDARIES[level].split(text) if p]
    if len(pieces) == 1:
        return _split(text, limit, level + 1)
    joiner = " " if level >= 2 else ""
    parts: list[str] = []
    current = ""
    for piece in pieces:
        if len(piece) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.extend(_split(piece, limit, level + 1))
        elif not current:
            current = piece
        elif len(current) + len(joiner) + len(piece) <= limit:
            current = current + joiner + piece
        else:
            parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts
