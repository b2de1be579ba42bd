"""The WebSocket hub against a real Redis: one shared subscription, gap-free resume, slow consumers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.routers import ws
from api.ws_hub import Client, Hub
from core.events import EventBus, channel_name, dialog_topic, public_topic
from core.redis import async_redis, reset_clients
from core.settings import get_settings

REDIS_URL = "redis://127.0.0.1:6379/13"
HUB_NAME = f"chatai-ws-hub-test-{uuid.uuid4().hex[:8]}"  # finds the hub's pub/sub connection in CLIENT LIST
TIMEOUT = 10.0


class FakeSocket:
    """Collects the frames the hub sends; a stalled one never finishes a send, like a stuck client."""

    def __init__(self, stalled: bool = False) -> None:
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._stalled = stalled

    async def send_text(self, data: str) -> None:
        if self._stalled:
            await asyncio.Event().wait()
        self.frames.put_nowait(orjson.loads(data))

    async def close(self, code: int, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result((code, reason))

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), TIMEOUT)

    async def until_subscribed(self) -> list[dict[str, Any]]:
        """The events sent before ``subscribed`` (the replay)."""
        events = []
        while (frame := await self.next())["type"] != "subscribed":
            events.append(frame)
        return events

    async def events_until(self, last_id: str) -> list[str]:
        """Ids of the events received up to and including ``last_id``."""
        ids: list[str] = []
        while not ids or ids[-1] != last_id:
            frame = await self.next()
            assert "id" in frame, frame
            ids.append(frame["id"])
        return ids


@pytest.fixture(scope="module")
async def redis_db() -> AsyncIterator[aioredis.Redis]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_URL", REDIS_URL)
        get_settings.cache_clear()
        reset_clients()
        client = async_redis()
        await client.flushdb()
        yield client
    get_settings.cache_clear()
    reset_clients()


@pytest.fixture
async def bus(redis_db: aioredis.Redis) -> EventBus:
    return EventBus(async_client=redis_db)


@pytest.fixture
async def hub(redis_db: aioredis.Redis) -> AsyncIterator[Hub]:
    settings = get_settings().model_copy(
        update={"ws_send_queue_size": 64, "ws_replay_page_size": 7, "ws_pubsub_health_seconds": 1.0}
    )
    hub = Hub(settings, client_name=HUB_NAME)
    await hub.start()
    yield hub
    await hub.stop()


def new_topic() -> str:
    return dialog_topic(uuid.uuid4())


async def numsub(redis_db: aioredis.Redis, topic: str) -> int:
    return int((await redis_db.pubsub_numsub(channel_name(topic)))[0][1])


async def wait_for_numsub(redis_db: aioredis.Redis, topic: str, expected: int) -> None:
    async def poll() -> None:
        while (await numsub(redis_db, topic)) != expected:  # noqa: ASYNC110 (polls Redis, not a flag)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT)


async def publish(bus: EventBus, topic: str, n: int) -> list[str]:
    return [await bus.apublish(topic, "reply.delta", {"text": f"t{i}"}) for i in range(n)]


async def subscribed_socket(
    hub: Hub, topic: str, last_event_id: str | None = None
) -> tuple[FakeSocket, Client]:
    socket = FakeSocket()
    client = hub.attach(socket)
    hub.subscribe(client, topic, public_topic(topic), last_event_id)
    return socket, client


async def test_two_sockets_share_one_redis_subscription(
    hub: Hub, bus: EventBus, redis_db: aioredis.Redis
) -> None:
    topic = new_topic()
    (a, client_a), (b, client_b) = [await subscribed_socket(hub, topic) for _ in range(2)]
    assert await a.until_subscribed() == [] and await b.until_subscribed() == []
    assert await numsub(redis_db, topic) == 1

    ids = await publish(bus, topic, 3)
    for socket in (a, b):
        frames = [await socket.next() for _ in ids]
        assert [f["id"] for f in frames] == ids
        expected = {"id": ids[0], "topic": public_topic(topic), "type": "reply.delta", "data": {"text": "t0"}}
        assert frames[0] == expected

    hub.detach(client_a)
    assert await numsub(redis_db, topic) == 1
    hub.detach(client_b)
    await wait_for_numsub(redis_db, topic, 0)


async def test_replay_then_live_without_gap_or_duplicate(
    hub: Hub, bus: EventBus, redis_db: aioredis.Redis
) -> None:
    topic = new_topic()
    before = await publish(bus, topic, 30)
    # Publishing goes on while the socket replays (pages of 7), so live events arrive mid-replay.
    concurrent = asyncio.create_task(publish(bus, topic, 60))
    socket, _ = await subscribed_socket(hub, topic, last_event_id=before[9])
    replayed = [frame["id"] for frame in await socket.until_subscribed()]
    during = await concurrent
    sentinel = (await publish(bus, topic, 1))[0]

    received = replayed + await socket.events_until(sentinel)
    assert received == before[10:] + during + [sentinel]
    assert replayed[:20] == before[10:]
    assert socket.frames.empty()


async def test_replay_from_zero_and_live_only(hub: Hub, bus: EventBus) -> None:
    topic = new_topic()
    before = await publish(bus, topic, 10)
    everything, _ = await subscribed_socket(hub, topic, last_event_id="0")
    live, _ = await subscribed_socket(hub, topic)
    assert [frame["id"] for frame in await everything.until_subscribed()] == before
    assert await live.until_subscribed() == []

    after = await publish(bus, topic, 3)
    assert await everything.events_until(after[-1]) == after
    assert await live.events_until(after[-1]) == after


async def test_slow_consumer_is_closed_while_others_get_everything(
    hub: Hub, bus: EventBus, redis_db: aioredis.Redis
) -> None:
    topic = new_topic()
    fast, _ = await subscribed_socket(hub, topic)
    slow = FakeSocket(stalled=True)
    slow_client = hub.attach(slow)
    hub.subscribe(slow_client, topic, public_topic(topic), None)
    await fast.until_subscribed()

    ids = await publish(bus, topic, 200)
    assert await asyncio.wait_for(slow.closed, TIMEOUT) == (4008, "too_slow: resume with last_event_id")
    assert slow_client.closed and not slow_client.subs
    assert await fast.events_until(ids[-1]) == ids
    assert await numsub(redis_db, topic) == 1


async def test_events_of_unsubscribed_topics_are_not_delivered(
    hub: Hub, bus: EventBus, redis_db: aioredis.Redis
) -> None:
    wanted, other = new_topic(), new_topic()
    socket, client = await subscribed_socket(hub, wanted)
    await socket.until_subscribed()

    await publish(bus, other, 3)
    wanted_id = (await publish(bus, wanted, 1))[0]
    assert (await socket.next())["id"] == wanted_id
    assert socket.frames.empty()
    assert await numsub(redis_db, other) == 0

    hub.unsubscribe(client, wanted)
    await wait_for_numsub(redis_db, wanted, 0)
    await publish(bus, wanted, 1)
    client.send('{"type":"pong"}')
    assert await socket.next() == {"type": "pong"}


async def test_lost_redis_connection_resubscribes_and_catches_up(
    hub: Hub, bus: EventBus, redis_db: aioredis.Redis
) -> None:
    topic = new_topic()
    socket, client = await subscribed_socket(hub, topic)
    await socket.until_subscribed()
    first = (await publish(bus, topic, 1))[0]
    assert (await socket.next())["id"] == first

    hub_connections = [c for c in await redis_db.client_list() if c["name"] == HUB_NAME]
    assert len(hub_connections) == 1
    await redis_db.client_kill_filter(_id=hub_connections[0]["id"])
    # Published while the hub has no subscription: they reach the socket by replay.
    missed = await publish(bus, topic, 5)
    await wait_for_numsub(redis_db, topic, 1)
    later = await publish(bus, topic, 3)

    assert await socket.events_until(later[-1]) == missed + later
    assert not client.closed and not socket.closed.done()


@asynccontextmanager
async def _no_session() -> AsyncIterator[None]:
    yield None  # the refusals tested here happen before any database read


@pytest.fixture
def gateway(redis_db: aioredis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.hub = Hub(client_name="chatai-ws-gateway-test")
        await app.state.hub.start()
        yield
        await app.state.hub.stop()

    monkeypatch.setattr(ws, "unit_of_work", _no_session)
    app = FastAPI(lifespan=lifespan)
    app.include_router(ws.router)
    with TestClient(app) as client:
        yield client


def test_gateway_closes_4401_on_a_bad_token(gateway: TestClient) -> None:
    with gateway.websocket_connect("/api/ws?token=not-a-token") as socket:
        assert socket.receive_json()["code"] == "unauthorized"
        closing = socket.receive()
    assert closing["code"] == 4401 and closing["reason"].startswith("unauthorized")


def test_gateway_closes_4401_without_an_auth_frame(
    gateway: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "ws_auth_timeout_seconds", 0.2)
    with gateway.websocket_connect("/api/ws") as socket:
        assert socket.receive_json()["code"] == "unauthorized"
        assert socket.receive()["code"] == 4401
