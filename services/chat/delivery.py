"""Turns a provider's token stream into coalesced ``reply.delta`` events.

Deltas are batched for ``window`` seconds (the first is sent at once, for time to first token).
Across attempts of one reply the publisher remembers what clients already have: a regenerated reply
that repeats that text publishes only what is new; one that diverges publishes a ``reset`` delta
carrying the whole new text, which replaces what the client shows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from core.events import EventBus


def delivered_text(frames: Iterable[dict[str, Any]], reply_id: uuid.UUID) -> str:
    """What clients were sent for ``reply_id``, rebuilt from the dialog topic's retained events."""
    wanted = str(reply_id)
    text = ""
    for event in frames:
        data = event.get("data", {})
        if event.get("type") == "reply.delta" and data.get("reply_id") == wanted:
            text = data["text"] if data.get("reset") else text + data["text"]
    return text


def frames_from_replay(pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    return [orjson.loads(frame) for _, frame in pairs]


class DeltaPublisher:
    def __init__(self, bus: EventBus, topic: str, reply_id: uuid.UUID, window: float, delivered: str = ""):
        self._bus = bus
        self._topic = topic
        self._reply_id = str(reply_id)
        self._window = window
        self.delivered = delivered
        self._parts: list[str] = []
        self._text = ""
        self._last_flush = 0.0

    def restart(self) -> None:
        """A new provider attempt starts from an empty text."""
        self._parts.clear()
        self._text = ""

    @property
    def text(self) -> str:
        if self._parts:
            self._text += "".join(self._parts)
            self._parts.clear()
        return self._text

    async def feed(self, delta: str) -> None:
        self._parts.append(delta)
        if time.monotonic() - self._last_flush >= self._window:
            await self.flush()

    async def flush(self) -> None:
        self._last_flush = time.monotonic()
        text, delivered = self.text, self.delivered
        if len(text) <= len(delivered):
            if delivered.startswith(text):
                return
            await self._publish(text, reset=True)
        elif text.startswith(delivered):
            await self._publish(text[len(delivered) :], reset=False)
        else:
            await self._publish(text, reset=True)
        self.delivered = text

    async def finish(self) -> str:
        """Publish what is pending; make sure clients end up with exactly the final text."""
        await self.flush()
        if self.delivered != self.text:
            await self._publish(self.text, reset=True)
            self.delivered = self.text
        return self.text

    async def _publish(self, text: str, reset: bool) -> None:
        data: dict[str, Any] = {"reply_id": self._reply_id, "text": text}
        if reset:
            data["reset"] = True
        await self._bus.apublish(self._topic, "reply.delta", data)
