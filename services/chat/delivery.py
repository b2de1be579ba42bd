"""Turns a provider's token stream into coalesced ``reply.delta`` events.

Deltas are batched for ``window`` seconds (the first is sent at once, for time to first token); the window
grows with the number of generations the process runs, so a busy worker publishes fewer, larger events.
Across attempts of one reply the publisher remembers what clients already have: a regenerated reply
that repeats that text publishes only what is new; one that diverges publishes a ``reset`` delta
carrying the whole new text, which replaces what the client shows.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
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


def coalesce_window(base_ms: float, max_ms: float, busy_replies: int, running: int) -> float:
    """Seconds over which a reply's deltas gather: ``base_ms`` while the process generates up to
    ``busy_replies`` replies, then growing in proportion to them (each event costs the worker a Redis
    write and every API process a fan-out, whatever its size) up to ``max_ms``."""
    scale = running / busy_replies if busy_replies > 0 else 1.0
    return min(max_ms, base_ms * max(1.0, scale)) / 1000 if max_ms > base_ms else base_ms / 1000


def frames_from_replay(pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    return [orjson.loads(frame) for _, frame in pairs]


class DeltaPublisher:
    """Coalesces one reply's deltas. ``feed`` never waits for Redis: events are queued in order on the
    loop's shared publisher, and ``finish`` waits until every one of them has been written."""

    def __init__(
        self,
        bus: EventBus,
        topic: str,
        reply_id: uuid.UUID,
        window: float | Callable[[], float],
        delivered: str = "",
    ):
        self._bus = bus
        self._topic = topic
        self._reply_id = str(reply_id)
        # Seconds, or a function of the moment's load that says how many.
        self._window = window if callable(window) else (lambda: window)
        self.delivered = delivered
        self._parts: list[str] = []
        self._text = ""
        self._last_flush = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._sent: list[asyncio.Future[str]] = []

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

    def feed(self, delta: str) -> None:
        self._parts.append(delta)
        wait = self._last_flush + self._window() - time.monotonic()
        if wait <= 0:
            self.flush()
        elif self._timer is None:
            # A stalled stream still shows what it has once the window has passed.
            self._timer = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_flush = time.monotonic()
        text, delivered = self.text, self.delivered
        if len(text) <= len(delivered):
            if delivered.startswith(text):
                return
            self._publish(text, reset=True)
        elif text.startswith(delivered):
            self._publish(text[len(delivered) :], reset=False)
        else:
            self._publish(text, reset=True)
        self.delivered = text

    async def finish(self) -> str:
        """Publish what is pending, make sure clients end up with exactly the final text, and wait until
        every delta is written (so the terminal event that follows comes after them)."""
        self.flush()
        if self.delivered != self.text:
            self._publish(self.text, reset=True)
            self.delivered = self.text
        sent, self._sent = self._sent, []
        await asyncio.gather(*sent)
        return self.text

    def _publish(self, text: str, reset: bool) -> None:
        data: dict[str, Any] = {"reply_id": self._reply_id, "text": text}
        if reset:
            data["reset"] = True
        self._sent.append(self._bus.publish_nowait(self._topic, "reply.delta", data))
