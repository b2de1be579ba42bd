"""The queue canary: beat sends a ping to every queue; the worker that takes it records when.

A queue whose pings are not consumed (no worker, or workers that stopped consuming) shows its last
consumption growing old. Kept in one Redis hash per field kind, keyed by queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

# The ping's send time travels in a message header of its own (set by beat as it publishes); custom
# headers become attributes of the task's request on the worker.
SENT_AT_HEADER = "canary_sent_at"
SENT_KEY = "chatai:canary:sent"  # queue → when the last ping was sent
CONSUMED_KEY = "chatai:canary:consumed"  # queue → when the last ping was taken by a worker
LATENCY_KEY = "chatai:canary:latency"  # queue → seconds that ping waited in the queue


@dataclass(frozen=True)
class QueueHealth:
    queue: str
    consuming: bool
    last_sent_at: float | None
    last_consumed_at: float | None
    latency_seconds: float | None


def record_sent(client: redis.Redis, queue: str, at: float) -> None:
    client.hset(SENT_KEY, queue, at)


def record_consumed(client: redis.Redis, queue: str, sent_at: float | None, now: float | None = None) -> None:
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    pipe.hset(CONSUMED_KEY, queue, now)
    if sent_at is not None:
        pipe.hset(LATENCY_KEY, queue, max(0.0, now - sent_at))
    pipe.execute()


def _floats(raw: dict[bytes, bytes]) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in raw.items()}


async def queue_health(
    client: aioredis.Redis, queues: list[str], stale_seconds: float, now: float | None = None
) -> list[QueueHealth]:
    """One entry per queue; ``consuming`` means a ping was taken within ``stale_seconds``."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(SENT_KEY)
    pipe.hgetall(CONSUMED_KEY)
    pipe.hgetall(LATENCY_KEY)
    sent, consumed, latency = (_floats(raw) for raw in await pipe.execute())
    return [
        QueueHealth(
            queue=q,
            consuming=q in consumed and now - consumed[q] <= stale_seconds,
            last_sent_at=sent.get(q),
            last_consumed_at=consumed.get(q),
            latency_seconds=latency.get(q),
        )
        for q in queues
    ]
