"""The WebSocket hub: one Redis pub/sub connection per API process, fanned out to its local sockets.

Each published payload (already the frame text) goes to the bounded queue of each interested socket; a
socket whose queue is full is closed (4008) rather than stalling anyone. A subscription buffers live
frames from registration, waits for Redis to confirm the SUBSCRIBE, replays the stream after its last
id, sends ``subscribed``, then flushes buffered frames newer than the last id sent. After a lost Redis
connection every channel is re-subscribed and every subscription catches up the same way, so sockets
stay open and miss nothing the stream retains.

The same connection carries session revocations (``core.revocation``): a socket is closed (4001) when
an announcement names one of its sessions, and when its token expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from core import revocation
from core.events import EventBus, channel_name, stream_entries, stream_key
from core.metrics import EVENT_BUS_LAG
from core.redis import async_redis
from core.settings import Settings, get_settings

log = logging.getLogger("chatai.ws")

WS_CONNECTIONS = Gauge("chatai_ws_connections", "Open WebSocket connections of this process")
WS_EVENTS_DELIVERED = Counter("chatai_ws_events_delivered_total", "Events sent to WebSocket clients")

CLOSE_TOO_SLOW, REASON_TOO_SLOW = 4008, "too_slow: resume with last_event_id"
CLOSE_UNAVAILABLE, REASON_UNAVAILABLE = 1013, "unavailable: resume with last_event_id"
CLOSE_GOING_AWAY, REASON_GOING_AWAY = 1001, "going_away: resume with last_event_id"
CLOSE_SESSION_ENDED, REASON_EXPIRED = 4001, "token_expired: reconnect with a new token"

EventKey = tuple[int, int]
EVENT_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


def event_key(event_id: str) -> EventKey:
    """A stream id ``<ms>-<seq>`` as a tuple, so ids compare numerically."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class Connection(Protocol):
    """What the hub needs of a socket; a Starlette ``WebSocket`` fits as it is."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(eq=False)
class _Sub:
    client: Client
    topic: str
    client_topic: str
    last_id: str | None  # the newest id handed to the client, or where it resumes from
    key: EventKey | None
    buffer: deque[tuple[EventKey, str, str]] | None = field(default_factory=deque)  # while catching up
    task: asyncio.Task[None] | None = None
    # What this subscriber may see of a frame (None: nothing); unset, every frame as published.
    view: Callable[[str], str | None] | None = None

    def shown(self, text: str) -> str | None:
        return text if self.view is None else self.view(text)


class Client:
    """One local socket: its subscriptions and its bounded send queue, drained by one writer task."""

    def __init__(
        self, hub: Hub, conn: Connection, queue_size: int, gauge: Gauge, delivered: Counter,
        sessions: Iterable[str], issued_at: float,
    ) -> None:  # fmt: skip
        self.conn = conn
        self.gauge = gauge
        self.delivered = delivered
        self.subs: dict[str, _Sub] = {}
        self.closed = False
        self.sessions = frozenset(sessions)  # the revocation keys that close this socket
        self.issued_at = issued_at
        self.expiry: asyncio.TimerHandle | None = None
        self._hub = hub
        self._queue: asyncio.Queue[tuple[str, bool]] = asyncio.Queue(queue_size)
        # Replays wait for room below this mark, so live frames of other topics still fit.
        self._replay_mark = max(1, queue_size // 2)
        self._room = asyncio.Event()
        self.writer = asyncio.create_task(self._write())

    def send(self, text: str, event: bool = False) -> bool:
        """Queue a frame without waiting; a full queue closes the socket as too slow."""
        if self.closed:
            return False
        try:
            self._queue.put_nowait((text, event))
        except asyncio.QueueFull:
            self._hub.close(self, CLOSE_TOO_SLOW, REASON_TOO_SLOW)
            return False
        return True

    async def put(self, text: str) -> None:
        """Queue a replayed or buffered event, waiting while the queue is more than half full."""
        while self._queue.qsize() >= self._replay_mark:
            self._room.clear()
            await self._room.wait()
        self._queue.put_nowait((text, True))

    async def _write(self) -> None:
        while True:
            text, event = await self._queue.get()
            if self._queue.qsize() < self._replay_mark:
                self._room.set()
            try:
                await self.conn.send_text(text)
            except Exception:
                self._hub.detach(self)  # the socket is gone; its router sees the disconnect too
                return
            if event:
                self.delivered.inc()


class Hub:
    """Live events for the sockets of one API process, through one Redis pub/sub connection."""

    def __init__(self, settings: Settings | None = None, client_name: str = "chatai-ws-hub") -> None:
        settings = settings or get_settings()
        options = {"socket_connect_timeout": 5, "socket_timeout": 5, "socket_keepalive": True}
        self._pool = aioredis.ConnectionPool.from_url(settings.redis_url, client_name=client_name, **options)
        self._queue_size = settings.ws_send_queue_size
        self._page = settings.ws_replay_page_size
        self._health = settings.ws_pubsub_health_seconds
        self._clients: set[Client] = set()
        self._by_session: dict[str, set[Client]] = {}
        self._channels: dict[str, set[_Sub]] = {}  # the subscriptions of each channel we want
        self._ready: dict[str, asyncio.Event] = {}  # set once Redis has confirmed our SUBSCRIBE
        self._pending: dict[str, int] = {}  # SUBSCRIBEs queued or sent but not yet confirmed
        self._commands: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
        self._conn: aioredis.Connection | None = None
        self._epoch = 0  # bumped on every (re)connection; commands of an older epoch are dropped
        self._lock = asyncio.Lock()  # one writer on the pub/sub connection at a time
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._redis: aioredis.Redis | None = None
        self._bus: EventBus | None = None

    async def start(self) -> None:
        self._redis = async_redis()
        self._bus = EventBus(async_client=self._redis)
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._send_commands())]

    async def stop(self) -> None:
        for client in list(self._clients):
            self.close(client, CLOSE_GOING_AWAY, REASON_GOING_AWAY)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._closing, return_exceptions=True)

    def attach(
        self,
        conn: Connection,
        sessions: Iterable[str] = (),
        issued_at: float = 0.0,
        expires_at: float | None = None,
        gauge: Gauge = WS_CONNECTIONS,
        delivered: Counter = WS_EVENTS_DELIVERED,
    ) -> Client:
        """A local receiver of events (a WebSocket, or another consumer with metrics of its own); it is
        closed (4001) at ``expires_at`` and when a revocation names one of its sessions."""
        client = Client(self, conn, self._queue_size, gauge, delivered, sessions, issued_at)
        self._clients.add(client)
        for key in client.sessions:
            self._by_session.setdefault(key, set()).add(client)
        if expires_at is not None:
            delay = max(0.0, expires_at - time.time())
            client.expiry = asyncio.get_running_loop().call_later(
                delay, self.close, client, CLOSE_SESSION_ENDED, REASON_EXPIRED
            )
        gauge.inc()
        return client

    def detach(self, client: Client) -> None:
        """Forget a socket that has gone away (idempotent)."""
        if not client.closed:
            client.closed = True
            self._clients.discard(client)
            client.gauge.dec()
            if client.expiry is not None:
                client.expiry.cancel()
            for key in client.sessions:
                holders = self._by_session.get(key)
                if holders is not None:
                    holders.discard(client)
                    if not holders:
                        del self._by_session[key]
            for topic in list(client.subs):
                self.unsubscribe(client, topic)
            if client.writer is not asyncio.current_task():
                client.writer.cancel()

    def close(self, client: Client, code: int, reason: str) -> None:
        """Detach a socket and close it with ``code``, without waiting for it."""
        if not client.closed:
            self.detach(client)
            task = asyncio.create_task(self._close(client.conn, code, reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def subscribe(
        self,
        client: Client,
        topic: str,
        client_topic: str,
        last_event_id: str | None,
        view: Callable[[str], str | None] | None = None,
    ) -> None:
        """Deliver ``topic``: events after ``last_event_id`` ("0": all retained; None: live only), then
        ``subscribed``, then live events, each through ``view`` when given. Returns at once; the
        catch-up runs in a task."""
        if last_event_id is not None and not EVENT_ID.fullmatch(last_event_id):
            raise ValueError("last_event_id is not an event id")
        self.unsubscribe(client, topic)
        key = None if last_event_id is None else event_key(last_event_id)
        sub = client.subs[topic] = _Sub(client, topic, client_topic, last_event_id, key, view=view)
        channel = channel_name(topic)
        if channel not in self._channels:
            self._channels[channel], self._ready[channel] = set(), asyncio.Event()
            self._pending[channel] = self._pending.get(channel, 0) + 1
            self._commands.put_nowait((self._epoch, "SUBSCRIBE", channel))
        self._channels[channel].add(sub)
        sub.task = asyncio.create_task(self._catch_up(sub, announce=True))

    def unsubscribe(self, client: Client, topic: str) -> None:
        sub = client.subs.pop(topic, None)
        if sub is None:
            return
        if sub.task is not None and sub.task is not asyncio.current_task():
            sub.task.cancel()
        channel = channel_name(topic)
        self._channels[channel].discard(sub)
        if not self._channels[channel]:
            del self._channels[channel], self._ready[channel]
            self._commands.put_nowait((self._epoch, "UNSUBSCRIBE", channel))

    async def _send_commands(self) -> None:
        while True:
            epoch, command, channel = await self._commands.get()
            async with self._lock:
                # A reconnect since this was queued has already subscribed every current channel.
                if epoch != self._epoch or self._conn is None:
                    continue
                with contextlib.suppress(RedisError, OSError):
                    await self._conn.send_command(command, channel)

    async def _run(self) -> None:
        delay = 0.0
        while True:
            try:
                conn = await self._connect()
                delay = 0.0
                await self._read(conn)
            except (RedisError, OSError) as exc:
                log.warning("ws hub: pub/sub connection lost", extra={"error": repr(exc)})
            except Exception:
                log.exception("ws hub: reader failed; reconnecting")
            finally:
                if (lost := self._conn) is not None:
                    self._conn = None
                    with contextlib.suppress(RedisError, OSError):
                        await lost.disconnect(nowait=True)
            delay = min(max(delay * 2, 0.05), 5.0)
            await asyncio.sleep(delay)

    async def _connect(self) -> aioredis.Connection:
        conn = self._pool.make_connection()
        await conn.connect()
        async with self._lock:
            self._conn = conn
            self._epoch += 1
            self._pending = dict.fromkeys(self._channels, 1)
            for channel, subs in self._channels.items():
                self._ready[channel].set()  # wakes waiters of the old connection; they see the new epoch
                self._ready[channel] = asyncio.Event()
                for sub in subs:
                    if sub.buffer is None:  # live: catch up on what the lost connection missed
                        sub.buffer = deque()
                        sub.task = asyncio.create_task(self._catch_up(sub, announce=False))
            await conn.send_command("SUBSCRIBE", revocation.CHANNEL, *self._channels)
        return conn

    async def _read(self, conn: aioredis.Connection) -> None:
        pinged = False
        while True:
            response = await conn.read_response(timeout=self._health, push_request=True)
            if response is None:
                if pinged:
                    raise TimeoutError("no answer to PING on the pub/sub connection")
                pinged = True
                async with self._lock:
                    await conn.send_command("PING")
                continue
            pinged = False
            if isinstance(response, list) and response[0] == b"message":
                channel = response[1].decode()
                if channel == revocation.CHANNEL:
                    self._end_sessions(response[2])
                else:
                    self._fan_out(channel, response[2].decode())
            elif isinstance(response, list) and response[0] == b"subscribe":
                channel = response[1].decode()
                left = self._pending.pop(channel, 1) - 1
                if left > 0:
                    self._pending[channel] = left
                elif channel in self._ready:
                    self._ready[channel].set()

    def _fan_out(self, channel: str, text: str) -> None:
        event_id = text[7 : text.index('"', 7)]  # frames start with {"id":"<id>",
        key = event_key(event_id)
        # The id's first part is the append time on Redis's clock: lag from the worker's append to here.
        EVENT_BUS_LAG.observe(max(0.0, time.time() - key[0] / 1000))
        for sub in list(self._channels.get(channel, ())):
            if sub.buffer is None:
                if sub.key is not None and key <= sub.key:
                    continue
                shown = sub.shown(text)
                if shown is None or sub.client.send(shown, event=True):
                    sub.key, sub.last_id = key, event_id
            elif len(sub.buffer) < self._queue_size:
                sub.buffer.append((key, event_id, text))
            else:
                self.close(sub.client, CLOSE_TOO_SLOW, REASON_TOO_SLOW)

    def _end_sessions(self, payload: bytes) -> None:
        """Close the local sockets a revocation names (those authorised before its time, if it has one)."""
        try:
            notice = orjson.loads(payload)
            sessions = [key for key in notice["sessions"] if isinstance(key, str)]
            reason = str(notice["reason"])
            before = notice.get("issued_before")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("ws hub: unreadable revocation", extra={"error": repr(exc)})
            return
        # A close reason may hold at most 123 bytes.
        reason = reason.encode()[:123].decode(errors="ignore")
        for key in sessions:
            for client in list(self._by_session.get(key, ())):
                if not isinstance(before, int | float) or client.issued_at < before:
                    self.close(client, CLOSE_SESSION_ENDED, reason)

    async def _catch_up(self, sub: _Sub, announce: bool) -> None:
        try:
            while True:
                epoch = self._epoch
                await self._ready[channel_name(sub.topic)].wait()
                if epoch != self._epoch:
                    continue
                if sub.last_id is None:  # live only: events after the stream's tail as of now
                    assert self._redis is not None
                    tail = stream_entries(await self._redis.xrevrange(stream_key(sub.topic), count=1))
                    sub.last_id = tail[0][0].decode() if tail else "0"
                    sub.key = event_key(sub.last_id)
                await self._replay(sub, sub.last_id)
                if announce:
                    sub.client.send(orjson.dumps({"type": "subscribed", "topic": sub.client_topic}).decode())
                    announce = False
                while sub.buffer:
                    key, event_id, text = sub.buffer.popleft()
                    await self._deliver(sub, key, event_id, text)
                if epoch == self._epoch:
                    sub.buffer = None
                    return
        except (RedisError, OSError) as exc:
            log.warning("ws hub: replay failed", extra={"topic": sub.topic, "error": repr(exc)})
            self.close(sub.client, CLOSE_UNAVAILABLE, REASON_UNAVAILABLE)

    async def _replay(self, sub: _Sub, after: str) -> None:
        assert self._bus is not None
        while True:
            page = await self._bus.areplay(sub.topic, after, count=self._page)
            for event_id, text in page:
                await self._deliver(sub, event_key(event_id), event_id, text)
            if len(page) < self._page:
                return
            after = page[-1][0]

    async def _deliver(self, sub: _Sub, key: EventKey, event_id: str, text: str) -> None:
        if sub.key is None or key > sub.key:
            shown = sub.shown(text)
            if shown is not None:
                await sub.client.put(shown)
            sub.key, sub.last_id = key, event_id

    @staticmethod
    async def _close(conn: Connection, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(code, reason), timeout=5)
