"""The event bus on a real Redis: atomic append + publish, replay after an id, trimming by age."""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from core.events import EventBus, channel_name, stream_key

URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def bus() -> EventBus:
    client = redis.Redis.from_url(URL)
    client.flushdb()
    return EventBus(sync_client=client)


def test_publish_appends_and_publishes_the_same_frame(bus: EventBus) -> None:
    client = redis.Redis.from_url(URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel_name("dialog:1"))
    pubsub.get_message(timeout=1)
    event_id = bus.publish("dialog:1", "reply.delta", {"reply_id": "r", "text": 'hé "quoted"'})
    live = None
    deadline = time.monotonic() + 5
    while live is None and time.monotonic() < deadline:
        live = pubsub.get_message(timeout=0.5)
    assert live is not None
    frame = orjson.loads(live["data"])
    assert frame == {"id": event_id, "topic": "dialog:1", "type": "reply.delta",
                     "data": {"reply_id": "r", "text": "hé \"quoted\""}}  # fmt: skip
    assert bus.replay("dialog:1") == [frame]


def test_replay_after_an_id_and_user_topics_are_private_streams(bus: EventBus) -> None:
    ids = [bus.publish("dialog:2", "n", {"i": i}) for i in range(5)]
    assert [e["data"]["i"] for e in bus.replay("dialog:2", ids[1])] == [2, 3, 4]
    assert bus.replay("dialog:2", ids[-1]) == []
    bus.publish("user:abc", "balance.changed", {"balance_micros": 1})
    (event,) = bus.replay("user:abc")
    assert event["topic"] == "user"  # clients call their own topic "user"
    assert bus.replay("user:other") == []


def test_old_events_are_trimmed_by_age(bus: EventBus) -> None:
    client = redis.Redis.from_url(URL)
    # 500 entries two hours old, written directly with explicit ids.
    old_ms = int(time.time() * 1000) - 2 * 3600 * 1000
    for seq in range(500):
        client.xadd(
            stream_key("dialog:3"), {"e": '"topic":"dialog:3","type":"old","data":{}}'}, id=f"{old_ms}-{seq}"
        )
    for i in range(50):
        bus.publish("dialog:3", "new", {"i": i})
    events = bus.replay("dialog:3")
    # Trimming is approximate (whole stream nodes of up to 100 entries), and never touches retained events.
    assert sum(e["type"] == "old" for e in events) < 100
    assert [e["data"]["i"] for e in events if e["type"] == "new"] == list(range(50))


async def test_concurrent_async_publishes_share_pipelines_and_keep_each_topics_order() -> None:
    import asyncio

    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(URL)
    await client.flushdb()
    await client.script_flush()  # the first batch must load the script itself
    bus = EventBus(async_client=client)
    sent = []
    original_execute = aioredis.client.Pipeline.execute

    async def counting_execute(pipe, raise_on_error=True):  # type: ignore[no-untyped-def]
        sent.append(len(pipe.command_stack))
        return await original_execute(pipe, raise_on_error)

    aioredis.client.Pipeline.execute = counting_execute  # type: ignore[method-assign]
    try:

        async def stream(topic: str) -> list[str]:
            return [await bus.apublish(topic, "reply.delta", {"i": i}) for i in range(20)]

        ids = await asyncio.gather(*(stream(f"dialog:p{n}") for n in range(50)))
    finally:
        aioredis.client.Pipeline.execute = original_execute  # type: ignore[method-assign]
    for n, topic_ids in enumerate(ids):
        replayed = await bus.areplay(f"dialog:p{n}", "0")
        assert [event_id for event_id, _ in replayed] == topic_ids
        assert [orjson.loads(frame)["data"]["i"] for _, frame in replayed] == list(range(20))
    assert sum(sent) >= 1000 and len(sent) < 200  # 1,000 events in far fewer round trips
    await client.aclose()
