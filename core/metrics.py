"""Prometheus metrics of every process kind, named as the README's Metrics table lists (units in the names).

The API serves them at ``/metrics``; each worker process serves them on its own port
(``CHATAI_METRICS_PORT`` + the queue's offset, or ``CHATAI_WORKER_METRICS_PORT``). Prefork workers run
in the client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``workers.run``), so the
children's samples are summed by the parent's endpoint.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("chatai.metrics")

# Buckets from a cached read (a few ms) to a slow upload; the API's p95 alert sits at 0.5 s.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Tasks range from a ledger entry (ms) to a long reply or a large document (minutes).
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

HTTP_REQUEST_DURATION = Histogram(
    "chatai_http_request_duration_seconds",
    "HTTP request duration by route template, method and status",
    ["route", "method", "status"],
    buckets=HTTP_BUCKETS,
)

TASK_DURATION = Histogram(
    "chatai_task_duration_seconds", "Task run time", ["queue", "task"], buckets=TASK_BUCKETS
)
TASKS_TOTAL = Counter(
    "chatai_tasks_total",
    "Tasks finished, by outcome (success, failure, retry, ...)",
    ["queue", "task", "outcome"],
)
TASK_RETRIES = Counter("chatai_task_retries_total", "Task retries scheduled", ["queue", "task"])
TASK_QUEUE_WAIT = Histogram(
    "chatai_task_queue_wait_seconds",
    "Time from sending a task to a worker starting it",
    ["queue", "task"],
    buckets=WAIT_BUCKETS,
)

LLM_TIME_TO_FIRST_TOKEN = Histogram(
    "chatai_llm_time_to_first_token_seconds",
    "From opening a provider stream to its first text",
    ["model"],
    buckets=TTFT_BUCKETS,
)
LLM_TOKENS = Counter("chatai_llm_tokens_total", "Tokens of finished replies", ["model", "kind"])
LLM_PROVIDER_ERRORS = Counter(
    "chatai_llm_provider_errors_total", "Provider errors, retried or final, by code", ["code"]
)

EVENT_BUS_LAG = Histogram(
    "chatai_event_bus_lag_seconds",
    "From an event's append to Redis to its arrival at a WebSocket gateway",
    buckets=LAG_BUCKETS,
)


# --- HTTP ---------------------------------------------------------------------------------------------

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


class HttpMetricsMiddleware:
    """Observes each HTTP request's duration under its route template (``/api/dialogs/{dialog_id}``).

    Pure ASGI and cheap: a clock read, a dict lookup of the labelled child, one observe.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before answering
        started = time.perf_counter()

        async def send_with_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            # Unmatched paths share one label, so scanners cannot grow the series without bound.
            template = getattr(route, "path", None) or "unmatched"
            key = (template, scope["method"], status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = HTTP_REQUEST_DURATION.labels(*key)
            child.observe(time.perf_counter() - started)


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST


# --- the broker's queues ------------------------------------------------------------------------------

# kombu's Redis transport: a queue is a list per priority step (the base name holds priority 0), and
# delivered-but-unacked messages sit in a hash by delivery tag with a sorted set of delivery times.
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_UNACKED_HASH = "unacked"
_UNACKED_INDEX = "unacked_index"
_UNACKED_SCAN = 200  # oldest unacked messages looked at per scrape


def queue_keys(queue: str) -> list[str]:
    return [queue, *(f"{queue}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS)]


def _sent_at(raw: bytes | None) -> float | None:
    if not raw:
        return None
    try:
        value = orjson.loads(raw).get("headers", {}).get("sent_at")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class QueueBacklog:
    depth: int  # messages waiting, every priority
    oldest_age_seconds: float  # of the oldest waiting message; 0 when none waits


def _ask_backlog(pipe: Any, queues: list[str]) -> None:
    for queue in queues:
        for key in queue_keys(queue):
            pipe.llen(key)
            pipe.lindex(key, -1)  # LPUSH in, BRPOP out: the tail is the oldest


def _backlogs(results: list[Any], queues: list[str], now: float) -> dict[str, QueueBacklog]:
    per_queue = 2 * (len(_PRIORITY_STEPS) + 1)
    backlogs = {}
    for i, queue in enumerate(queues):
        chunk = results[i * per_queue : (i + 1) * per_queue]
        ages = [now - sent for sent in map(_sent_at, chunk[1::2]) if sent is not None]
        backlogs[queue] = QueueBacklog(int(sum(chunk[0::2])), max(ages, default=0.0))
    return backlogs


def queue_backlog(broker_url: str, queues: Iterable[str]) -> dict[str, QueueBacklog] | None:
    """Each queue's waiting messages and the age of the oldest, read from a Redis broker; ``None`` for
    another broker or while it cannot be read."""
    if not broker_url.startswith(("redis://", "rediss://", "unix://")):
        return None
    names = list(queues)
    client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        _ask_backlog(pipe, names)
        return _backlogs(pipe.execute(), names, time.time())
    except redis.RedisError as exc:
        log.warning("queue backlog unavailable: %s", type(exc).__name__)
        return None
    finally:
        client.close()


class BrokerQueueCollector(Collector):
    """Reads, on scrape, each queue's length and the age of its oldest waiting and unacked message."""

    def __init__(self, broker_url: str, queues: Iterable[str]) -> None:
        self._client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
        self._queues = list(queues)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("chatai_queue_depth", "Messages waiting in the queue", labels=["queue"]),
            GaugeMetricFamily(
                "chatai_queue_oldest_message_age_seconds",
                "Age of the oldest message waiting in the queue (0 when empty)",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "chatai_queue_unacked", "Delivered to a worker, not yet acknowledged", labels=["queue"]
            ),
            GaugeMetricFamily(
                "chatai_queue_oldest_unacked_age_seconds",
                "Age of the oldest delivered, unacknowledged message (0 when none)",
                labels=["queue"],
            ),
            GaugeMetricFamily("chatai_broker_up", "1 when the last scrape could read the broker"),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration asks for names here instead of reading the broker.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth, oldest, unacked, unacked_age, up = self._families()
        try:
            now = time.time()
            pipe = self._client.pipeline(transaction=False)
            _ask_backlog(pipe, self._queues)
            pipe.zrange(_UNACKED_INDEX, 0, _UNACKED_SCAN - 1, withscores=True)
            results = pipe.execute()
            for queue, backlog in _backlogs(results, self._queues, now).items():
                depth.add_metric([queue], backlog.depth)
                oldest.add_metric([queue], backlog.oldest_age_seconds)
            counts, ages_by_queue = self._unacked(results[-1], now)
            for queue in self._queues:
                unacked.add_metric([queue], counts.get(queue, 0))
                unacked_age.add_metric([queue], ages_by_queue.get(queue, 0.0))
            up.add_metric([], 1)
        except redis.RedisError as exc:
            log.warning("broker metrics unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        yield from (depth, oldest, unacked, unacked_age, up)

    def _unacked(
        self, indexed: list[tuple[bytes, float]], now: float
    ) -> tuple[dict[str, int], dict[str, float]]:
        counts: dict[str, int] = {}
        ages: dict[str, float] = {}
        if not indexed:
            return counts, ages
        payloads = self._client.hmget(_UNACKED_HASH, [tag for tag, _ in indexed])
        for (_, delivered_at), payload in zip(indexed, payloads, strict=True):
            if payload is None:
                continue
            try:
                routing_key = orjson.loads(payload)[2]  # [message, exchange, routing_key]
            except (orjson.JSONDecodeError, IndexError, TypeError):
                continue
            counts[routing_key] = counts.get(routing_key, 0) + 1
            ages[routing_key] = max(ages.get(routing_key, 0.0), now - delivered_at)
        return counts, ages


# --- database pools -----------------------------------------------------------------------------------


class DatabasePoolCollector(Collector):
    """Connections in use and the pool limit, for the engines this process has created."""

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("chatai_db_pool_in_use", "Connections checked out", labels=["pool"]),
            GaugeMetricFamily("chatai_db_pool_max", "Most connections the pool opens", labels=["pool"]),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from core import db
        from core.settings import get_settings

        in_use, limit = self._families()
        # Only engines already made: a scrape must never open a database connection.
        if db.async_engine.cache_info().currsize:
            pool: Any = db.async_engine().pool
            in_use.add_metric(["sqlalchemy"], pool.checkedout())
            limit.add_metric(["sqlalchemy"], pool.size() + max(get_settings().db_max_overflow, 0))
        raw = db.open_raw_pools()
        if raw:
            stats = [p.get_stats() for p in raw]
            in_use.add_metric(["psycopg"], sum(s["pool_size"] - s["pool_available"] for s in stats))
            limit.add_metric(["psycopg"], sum(p.max_size for p in raw))
        yield in_use
        yield limit


# --- worker endpoints ---------------------------------------------------------------------------------


def multiprocess_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def in_multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


# Ports of the processes that are not queue workers, as offsets from CHATAI_METRICS_PORT (the workers
# take 1 + their queue's index).
TELEGRAM_POLLER_PORT_OFFSET = 10
BEAT_PORT_OFFSET = 11


def port_at(offset: int) -> int | None:
    from core.settings import get_settings

    base = get_settings().metrics_port
    return base + offset if base else None


def serve(port: int | None, registry: CollectorRegistry = REGISTRY, db_pools: bool = True) -> bool:
    """Serve ``registry`` on ``port`` from a daemon thread (the endpoint of a process without HTTP)."""
    from core.settings import get_settings

    if not port:
        return False
    if db_pools and registry is REGISTRY:
        REGISTRY.register(DatabasePoolCollector())
    host = get_settings().metrics_host
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        # A busy port must not stop the process from working; the scrape target shows it down.
        log.warning("metrics endpoint not started on %s:%s: %s", host, port, exc)
        return False
    log.info("metrics on %s:%s", host, port)
    return True


_api_collectors_registered = False


def register_api_collectors(broker_url: str, queues: Iterable[str]) -> None:
    """The collectors only the API runs: the broker's queues (Redis broker only) and the DB pools."""
    global _api_collectors_registered
    if _api_collectors_registered:
        return
    _api_collectors_registered = True
    REGISTRY.register(DatabasePoolCollector())
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        REGISTRY.register(BrokerQueueCollector(broker_url, queues))


# --- LLM helpers (called on the generation path: label lookups only) -----------------------------------


def observe_first_token(model: str, seconds: float) -> None:
    LLM_TIME_TO_FIRST_TOKEN.labels(model).observe(seconds)


def count_tokens(model: str, prompt_tokens: int, completion_tokens: int) -> None:
    LLM_TOKENS.labels(model, "prompt").inc(prompt_tokens)
    LLM_TOKENS.labels(model, "completion").inc(completion_tokens)


def count_retried_provider_error(retry_state: Any) -> None:
    """tenacity ``before_sleep``: a provider error that will be retried (final ones are counted apart)."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    LLM_PROVIDER_ERRORS.labels(getattr(exc, "code", type(exc).__name__)).inc()
