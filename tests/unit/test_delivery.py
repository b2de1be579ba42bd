"""Coalescing and resuming of reply deltas (the bus is a recorder: this is pure logic)."""

from __future__ import annotations

import uuid
from typing import Any

from services.chat.delivery import DeltaPublisher, delivered_text


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def apublish(self, topic: str, event_type: str, data: dict[str, Any]) -> str:
        self.events.append({"type": event_type, "data": data})
        return f"{len(self.events)}-0"


REPLY = uuid.uuid4()


def publisher(bus: RecordingBus, window: float, delivered: str = "") -> DeltaPublisher:
    return DeltaPublisher(bus, "dialog:x", REPLY, window, delivered)  # type: ignore[arg-type]


async def test_first_delta_goes_at_once_then_deltas_are_coalesced() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=60.0)
    for word in ("a ", "b ", "c ", "d"):
        await pub.feed(word)
    assert [e["data"]["text"] for e in bus.events] == ["a "]
    assert await pub.finish() == "a b c d"
    assert [e["data"]["text"] for e in bus.events] == ["a ", "b c d"]
    assert delivered_text(bus.events, REPLY) == "a b c d"


async def test_zero_window_publishes_every_delta() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=0.0)
    for word in ("x", "y", "z"):
        await pub.feed(word)
    await pub.finish()
    assert [e["data"]["text"] for e in bus.events] == ["x", "y", "z"]


async def test_a_regenerated_reply_skips_what_clients_already_have() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=0.0, delivered="Hello wor")
    for part in ("Hel", "lo ", "world", "!"):
        await pub.feed(part)
    await pub.finish()
    assert [e["data"]["text"] for e in bus.events] == ["ld", "!"]
    assert not any(e["data"].get("reset") for e in bus.events)
    assert delivered_text([{"type": "reply.delta", "data": {"reply_id": str(REPLY), "text": "Hello wor"}},
                           *bus.events], REPLY) == "Hello world!"  # fmt: skip


async def test_a_diverging_regeneration_resets_the_text() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=0.0, delivered="Hello wor")
    for part in ("Goodbye", " now"):
        await pub.feed(part)
    assert await pub.finish() == "Goodbye now"
    assert bus.events[0]["data"] == {"reply_id": str(REPLY), "text": "Goodbye", "reset": True}
    assert delivered_text(bus.events, REPLY) == "Goodbye now"


async def test_a_shorter_regeneration_ends_with_exactly_its_text() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=0.0, delivered="one two three")
    await pub.feed("one two")
    assert bus.events == []
    assert await pub.finish() == "one two"
    assert delivered_text([{"type": "reply.delta", "data": {"reply_id": str(REPLY), "text": "one two three"}},
                           *bus.events], REPLY) == "one two"  # fmt: skip
