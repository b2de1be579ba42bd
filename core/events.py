"""The event bus: every event is appended to its topic's Redis Stream (trimmed by age, for replay)
and published on the topic's channel (for live delivery), atomically, by one Lua script.

Wire format: the published payload and the replayed frame are the same JSON text,
``{"id": "<stream id>", "topic": ..., "type": ..., "data": {...}}``, built once by the publisher so the
WebSocket gateway forwards it without re-encoding.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections.abc import Sequence
from typing import Any, cast

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from core.settings import get_settings

STREAM_PREFIX = "chatai:stream:"
CHANNEL_PREFIX = "chatai:topic:"

# KEYS: stream, channel. ARGV: min id kept, body (the frame without its id; starts with '"topic"').
_PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', 'e', ARGV[2])
redis.call('PUBLISH', KEYS[2], '{"id":"' .. id .. '",' .. ARGV[2])
return id
"""


def user_topic(user_id: object) -> str:
    return f"user:{user_id}"


def dialog_topic(dialog_id: object) -> str:
    return f"dialog:{dialog_id}"


def stream_key(topic: str) -> str:
    # The braces make topic-keyed slots for Redis Cluster (stream and channel on one shard).
    return f"{STREAM_PREFIX}{{{topic}}}"


def channel_name(topic: str) -> str:
    return f"{CHANNEL_PREFIX}{{{topic}}}"


def topic_of_channel(channel: str) -> str:
    return channel[len(CHANNEL_PREFIX) + 1 : -1]


def public_topic(topic: str) -> str:
    """The name clients use: each user sees their own topic simply as ``user``."""
    return "user" if topic.startswith("user:") else topic


def encode_body(topic: str, event_type: str, data: dict[str, Any]) -> str:
    body = orjson.dumps(
        {"topic": public_topic(topic), "type": event_type, "data": data}, default=str
    ).decode()
    return body[1:]  # without the leading "{": the publisher prepends {"id":"…",


def frame(event_id: str, body: str) -> str:
    return '{"id":"' + event_id + '",' + body


def _min_id() -> str:
    retention_ms = get_settings().event_retention_seconds * 1000
    return f"{int(time.time() * 1000) - retention_ms}-0"


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _PipelinedPublisher:
    """Sends the events of every coroutine on one loop in shared pipelines.

    While one batch is on its way to Redis the next one gathers, so hundreds of concurrent generations
    cost one round trip per batch instead of one each. Batches go one at a time, in order, so the
    events of a topic keep the order they were published in.
    """

    MAX_BATCH = 1000

    def __init__(self, client: aioredis.Redis):
        self._client = client
        self._sha = hashlib.sha1(_PUBLISH_LUA.encode()).hexdigest()
        self._pending: list[tuple[list[str], str, asyncio.Future[str]]] = []
        self._sender: asyncio.Task[None] | None = None

    def publish(self, keys: list[str], body: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, body, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_pending())
        return future

    async def _send_pending(self) -> None:
        while self._pending:
            batch = self._pending[: self.MAX_BATCH]
            del self._pending[: self.MAX_BATCH]
            try:
                ids = await self._send(batch)
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), event_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(_decode(event_id))

    async def _send(self, batch: list[tuple[list[str], str, asyncio.Future[str]]]) -> list[Any]:
        min_id = _min_id()
        results: list[Any] = await self._evalsha_all(batch, min_id)
        missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if missing:  # the script cache was flushed (a Redis restart): load it and send those again
            await self._client.script_load(_PUBLISH_LUA)
            retried = await self._evalsha_all([batch[i] for i in missing], min_id)
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    async def _evalsha_all(
        self, batch: list[tuple[list[str], str, asyncio.Future[str]]], min_id: str
    ) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, body, _ in batch:
                pipe.evalsha(self._sha, 2, *keys, min_id, body)
            return await pipe.execute(raise_on_error=False)


_publishers: weakref.WeakKeyDictionary[aioredis.Redis, _PipelinedPublisher] = weakref.WeakKeyDictionary()


class EventBus:
    """Publishes and replays events; sync for tasks, async for the event loop."""

    def __init__(self, sync_client: redis.Redis | None = None, async_client: aioredis.Redis | None = None):
        self._sync = sync_client
        self._async = async_client
        self._sync_script = sync_client.register_script(_PUBLISH_LUA) if sync_client else None
        self._pipelined: _PipelinedPublisher | None = None
        if async_client is not None:
            self._pipelined = _publishers.get(async_client)
            if self._pipelined is None:
                self._pipelined = _publishers[async_client] = _PipelinedPublisher(async_client)

    def publish(self, topic: str, event_type: str, data: dict[str, Any]) -> str:
        assert self._sync_script is not None
        body = encode_body(topic, event_type, data)
        event_id = self._sync_script(keys=[stream_key(topic), channel_name(topic)], args=[_min_id(), body])
        return _decode(event_id)

    async def apublish(self, topic: str, event_type: str, data: dict[str, Any]) -> str:
        return await self.publish_nowait(topic, event_type, data)

    def publish_nowait(self, topic: str, event_type: str, data: dict[str, Any]) -> asyncio.Future[str]:
        """Queue the event behind every event queued before it on this loop; the future gives its id."""
        assert self._pipelined is not None
        keys = [stream_key(topic), channel_name(topic)]
        return self._pipelined.publish(keys, encode_body(topic, event_type, data))

    async def areplay(self, topic: str, after_id: str, count: int = 1000) -> list[tuple[str, str]]:
        """Events after ``after_id`` ("0" for all retained), oldest first, as (id, frame) pairs."""
        assert self._async is not None
        entries = stream_entries(
            await self._async.xrange(
                stream_key(topic), min=f"({after_id}" if after_id != "0" else "-", max="+", count=count
            )
        )
        out = []
        for raw_id, fields in entries:
            event_id = raw_id.decode()
            out.append((event_id, frame(event_id, fields[b"e"].decode())))
        return out

    def replay(self, topic: str, after_id: str = "0", count: int = 10000) -> list[dict[str, Any]]:
        assert self._sync is not None
        entries = stream_entries(
            self._sync.xrange(
                stream_key(topic), min=f"({after_id}" if after_id != "0" else "-", max="+", count=count
            )
        )
        return [orjson.loads(frame(raw_id.decode(), fields[b"e"].decode())) for raw_id, fields in entries]


def stream_entries(reply: object) -> Sequence[tuple[bytes, dict[bytes, bytes]]]:
    """XRANGE's entries as our clients return them: redis-py types them for every client setting, but
    these clients do not decode responses, so ids, field names and values are bytes."""
    return cast(Sequence[tuple[bytes, dict[bytes, bytes]]], reply)
