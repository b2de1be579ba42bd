"""Coalescing and resuming of reply deltas (the bus is a recorder: this is pure logic)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from services.chat.delivery import DeltaPublisher, coalesce_window, delivered_text


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.recorded = asyncio.Event()

    def publish_nowait(self, topic: str, event_type: str, data: dict[str, Any]) -> asyncio.Future[str]:
        self.events.append({"type": event_type, "data": data})
        self.recorded.set()
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        done.set_result(f"{len(self.events)}-0")
        return done


REPLY = uuid.uuid4()


def publisher(bus: RecordingBus, window: float, delivered: str = "") -> DeltaPublisher:
    return DeltaPublisher(bus, "dialog:x", REPLY, window, delivered)  # type: ignore[arg-type]


async def test_first_delta_goes_at_once_then_deltas_are_coalesced() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=60.0)
    for word in ("a ", "b ", "c ", "d"):
        pub.feed(word)
    assert [e["data"]["text"] for e in bus.events] == ["a "]
    assert await pub.finish() == "a b c d"
    assert [e["data"]["text"] for e in bus.events] == ["a ", "b c d"]
    assert delivered_text(bus.events, REPLY) == "a b c d"


async def test_zero_window_publishes_every_delta() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=0.0)
    for word in ("x", "y", "z"):
        pub.feed(word)
    await pub.finish()
    assert [e["data"]["text"] for e in bus.events] == ["x", "y", "z"]


async def test_a_regenerated_reply_skips_what_clients_already_have() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=0.0, delivered="Hello wor")
    for part in ("Hel", "lo ", "world", "!"):
        pub.feed(part)
    await pub.finish()
    assert [e["data"]["text"] for e in bus.events] == ["ld", "!"]
    assert not any(e["data"].get("reset") for e in bus.events)
    assert delivered_text([{"type": "reply.delta", "data": {"reply_id": str(REPLY), "text": "Hello wor"}},
                           *bus.events], REPLY) == "Hello world!"  # fmt: skip


async def test_a_diverging_regeneration_resets_the_text() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=0.0, delivered="Hello wor")
    for part in ("Goodbye", " now"):
        pub.feed(part)
    assert await pub.finish() == "Goodbye now"
    assert bus.events[0]["data"] == {"reply_id": str(REPLY), "text": "Goodbye", "reset": True}
    assert delivered_text(bus.events, REPLY) == "Goodbye now"


async def test_a_shorter_regeneration_ends_with_exactly_its_text() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=0.0, delivered="one two three")
    pub.feed("one two")
    assert bus.events == []
    assert await pub.finish() == "one two"
    assert delivered_text([{"type": "reply.delta", "data": {"reply_id": str(REPLY), "text": "one two three"}},
                           *bus.events], REPLY) == "one two"  # fmt: skip


async def test_a_stalled_stream_still_shows_its_pending_text_after_the_window() -> None:
    bus = RecordingBus()
    pub = publisher(bus, window=0.05)
    pub.feed("first ")
    pub.feed("second")  # inside the window: held back
    assert [e["data"]["text"] for e in bus.events] == ["first "]

    async def second_event() -> None:
        while len(bus.events) < 2:
            bus.recorded.clear()
            await bus.recorded.wait()

    await asyncio.wait_for(second_event(), timeout=5)
    assert [e["data"]["text"] for e in bus.events] == ["first ", "second"]
    assert await pub.finish() == "first second"
    assert len(bus.events) == 2


def test_the_window_grows_with_the_generations_in_flight_up_to_its_max() -> None:
    assert coalesce_window(50, 250, 20, 0) == 0.05
    assert coalesce_window(50, 250, 20, 20) == 0.05
    assert coalesce_window(50, 250, 20, 60) == 0.15
    assert coalesce_window(50, 250, 20, 500) == 0.25
    assert coalesce_window(50, 50, 20, 500) == 0.05  # a max at the base keeps the window fixed


async def test_a_window_function_is_read_at_each_delta() -> None:
    bus = RecordingBus()
    windows = [60.0]
    pub = DeltaPublisher(bus, "dialog:x", REPLY, lambda: windows[0])  # type: ignore[arg-type]
    pub.feed("a")
    pub.feed("b")
    assert [e["data"]["text"] for e in bus.events] == ["a"]
    windows[0] = 0.0  # the load dropped: the next delta goes at once
    pub.feed("c")
    assert [e["data"]["text"] for e in bus.events] == ["a", "bc"]
    await pub.finish()
