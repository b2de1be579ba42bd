"""The load generator: API clients over aiohttp (HTTP and WebSocket), closed and open loops, and the
direct-to-LLM baseline through the ``openai`` SDK. Everything here runs on one asyncio loop per process;
``run_part_process`` runs a share of a closed loop in a child process when one client loop is not enough.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import orjson

from bench.stats import own_cpu_seconds

T = TypeVar("T")
now = time.monotonic  # CLOCK_MONOTONIC: comparable across processes on Linux
TERMINAL = frozenset({"reply.completed", "reply.failed", "reply.cancelled"})
JSON = {"Content-Type": "application/json"}


class TurnError(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def http_session(limit: int = 0, timeout: float = 30) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        # Idle connections closed before uvicorn's 5 s keep-alive does, so a POST never races its close.
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=3.0),
        timeout=aiohttp.ClientTimeout(total=timeout),
        json_serialize=lambda o: orjson.dumps(o).decode(),
    )


# Setup through the API.


async def _json(resp: aiohttp.ClientResponse, expected: int) -> Any:
    body = await resp.read()
    if resp.status != expected:
        raise RuntimeError(f"{resp.method} {resp.url} answered {resp.status}: {body[:500]!r}")
    return orjson.loads(body)


async def signup(http: aiohttp.ClientSession, base_url: str) -> str:
    """Register and log in a fresh user; returns the access token."""
    email, password = f"bench-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery"
    async with http.post(f"{base_url}/api/auth/register", json={"email": email, "password": password}) as r:
        await _json(r, 201)
    async with http.post(f"{base_url}/api/auth/login", json={"email": email, "password": password}) as r:
        return (await _json(r, 200))["access_token"]


async def create_assistant(http: aiohttp.ClientSession, base_url: str, token: str, **fields: Any) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"name": "Bench assistant", **fields}
    async with http.post(f"{base_url}/api/assistants", json=body, headers=headers) as r:
        return (await _json(r, 201))["id"]


@dataclass(frozen=True)
class Owner:
    token: str
    assistant_id: str


# A dialog as the client needs it: (access token of its owner, dialog id).
Dialog = tuple[str, str]


async def create_owners(http: aiohttp.ClientSession, base_url: str, n: int, **assistant: Any) -> list[Owner]:
    owners = []
    for _ in range(n):
        token = await signup(http, base_url)
        owners.append(Owner(token, await create_assistant(http, base_url, token, **assistant)))
    return owners


async def create_dialogs(
    http: aiohttp.ClientSession, base_url: str, owners: list[Owner], n: int, parallel: int = 16
) -> list[Dialog]:
    """``n`` dialogs spread round-robin over ``owners``."""
    sem = asyncio.Semaphore(parallel)

    async def one(owner: Owner) -> Dialog:
        headers = {"Authorization": f"Bearer {owner.token}"}
        body = {"assistant_id": owner.assistant_id}
        async with sem, http.post(f"{base_url}/api/dialogs", json=body, headers=headers) as r:
            return owner.token, (await _json(r, 201))["id"]

    return list(await asyncio.gather(*(one(owners[i % len(owners)]) for i in range(n))))


# One dialog's WebSocket subscription and its turns.


@dataclass
class _Trace:
    started: float = math.nan
    first_delta: float = math.nan
    done_at: float = math.nan
    status: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)


# (t_post_start, t_202, t_first_delta, t_terminal, terminal event type, t_reply_started)
Turn = tuple[float, float, float, float, str, float]


class DialogSocket:
    def __init__(self, base_url: str, ws_url: str, token: str, dialog_id: str, deflate: bool) -> None:
        self.post_url = f"{base_url}/api/dialogs/{dialog_id}/messages"
        self.ws_url = f"{ws_url}?token={token}"
        self.headers = {"Authorization": f"Bearer {token}", **JSON}
        self.topic = f"dialog:{dialog_id}"
        self.deflate = deflate
        self.traces: dict[str, _Trace] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.closed_reason = ""
        self._reader: asyncio.Task[None] | None = None

    async def open(self, session: aiohttp.ClientSession, timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            self.ws = await session.ws_connect(
                self.ws_url, compress=15 if self.deflate else 0, max_msg_size=0, autoclose=True
            )
            await self.ws.send_str(orjson.dumps({"type": "subscribe", "topic": self.topic}).decode())
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"websocket closed while subscribing: {msg}")
                frame = orjson.loads(msg.data)
                if frame.get("type") == "subscribed":
                    break
                if frame.get("type") == "error":
                    raise RuntimeError(f"subscribe failed: {frame}")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                t = now()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                frame = orjson.loads(msg.data)
                data = frame.get("data")
                reply_id = data.get("reply_id") if isinstance(data, dict) else None
                if reply_id is None:
                    continue
                kind = frame.get("type")
                trace = self.trace(reply_id)
                if kind == "reply.delta":
                    if math.isnan(trace.first_delta):
                        trace.first_delta = t
                elif kind == "reply.started":
                    trace.started = t
                elif kind in TERMINAL:
                    trace.done_at, trace.status = t, kind
                    trace.done.set()
        finally:
            self.closed_reason = f"ws_closed_{self.ws.close_code}"
            for trace in self.traces.values():
                if not trace.done.is_set():
                    trace.status = self.closed_reason
                    trace.done.set()

    def trace(self, reply_id: str) -> _Trace:
        trace = self.traces.get(reply_id)
        if trace is None:
            trace = self.traces[reply_id] = _Trace()
        return trace

    async def turn(self, http: aiohttp.ClientSession, content: str, timeout: float) -> Turn:
        if self.closed_reason:
            raise TurnError(self.closed_reason)
        t0 = now()
        try:
            async with http.post(
                self.post_url, data=orjson.dumps({"content": content}), headers=self.headers
            ) as r:
                body = await r.read()
                t_accept = now()
                if r.status != 202:
                    raise TurnError(f"http_{r.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TurnError(type(exc).__name__) from exc
        reply_id = orjson.loads(body)["reply"]["id"]
        trace = self.trace(reply_id)
        try:
            async with asyncio.timeout(timeout):
                await trace.done.wait()
        except TimeoutError:
            raise TurnError("reply_timeout") from None
        finally:
            self.traces.pop(reply_id, None)
        return (t0, t_accept, trace.first_delta, trace.done_at, trace.status, trace.started)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            try:
                async with asyncio.timeout(5):
                    await self._reader
            except (TimeoutError, asyncio.CancelledError):
                self._reader.cancel()


# A closed loop: each dialog posts, waits for its reply to end, posts again.


@dataclass(frozen=True)
class PartParams:
    base_url: str
    ws_url: str
    dialogs: list[Dialog]
    warmup_s: float
    window_s: float
    stagger_s: float
    turn_timeout_s: float = 30.0
    think_max_s: float = 0.0
    deflate: bool = True
    seed: int = 0
    max_turns_per_dialog: int = 100_000


@dataclass
class PartResult:
    turns: list[Turn] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    client_cpu_window_s: float = math.nan
    start: float = math.nan
    w0: float = math.nan
    w1: float = math.nan


async def closed_loop_part(p: PartParams, ready: Callable[[], Awaitable[float]]) -> PartResult:
    """Open one WebSocket per dialog, wait for ``ready`` (returns the common start time), then loop until
    the end of the measured window; turns started before then are awaited (each within its timeout)."""
    result = PartResult()
    rng = random.Random(p.seed)
    ws_http = http_session(limit=0)
    http = http_session(limit=0)
    sockets = [DialogSocket(p.base_url, p.ws_url, token, d, p.deflate) for token, d in p.dialogs]
    try:
        sem = asyncio.Semaphore(32)

        async def open_one(sock: DialogSocket) -> None:
            async with sem:
                await sock.open(ws_http)

        await asyncio.gather(*(open_one(s) for s in sockets))
        start = await ready()
        w0 = start + p.warmup_s
        w1 = w0 + p.window_s
        result.start, result.w0, result.w1 = start, w0, w1

        async def cpu_window() -> None:
            await asyncio.sleep(max(0.0, w0 - now()))
            c0 = own_cpu_seconds()
            await asyncio.sleep(max(0.0, w1 - now()))
            result.client_cpu_window_s = own_cpu_seconds() - c0

        async def slot(i: int, sock: DialogSocket) -> None:
            await asyncio.sleep(max(0.0, start + rng.uniform(0, p.stagger_s) - now()))
            for n in range(p.max_turns_per_dialog):
                if now() >= w1:
                    return
                try:
                    result.turns.append(await sock.turn(http, f"bench question {i}.{n}", p.turn_timeout_s))
                except TurnError as exc:
                    result.errors[exc.kind] += 1
                    await asyncio.sleep(0.1)
                    continue
                if p.think_max_s:
                    await asyncio.sleep(rng.uniform(0, p.think_max_s))

        await asyncio.gather(cpu_window(), *(slot(i, s) for i, s in enumerate(sockets)))
        return result
    finally:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
        await ws_http.close()
        await http.close()


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when it is installed (a cheaper loop for the load generator)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_part_process(p: PartParams, barrier: Any, results: Any, barrier_timeout: float) -> None:
    """Entry point of a child client process: one share of the dialogs on its own loop."""

    async def ready() -> float:
        await asyncio.to_thread(barrier.wait, barrier_timeout)
        return now() + 0.2

    try:
        out = run_loop(closed_loop_part(p, ready))
        results.put(("ok", out.turns, dict(out.errors), out.client_cpu_window_s))
    except BaseException as exc:  # reported to the parent, which fails the phase
        results.put(("error", repr(exc), {}, math.nan))
        raise


# An open loop of POSTs at a fixed rate (latency counted from the scheduled send time).


async def open_loop_posts(
    http: aiohttp.ClientSession,
    base_url: str,
    dialogs: list[Dialog],
    rate: float,
    duration: float,
    timeout: float = 10.0,
) -> list[tuple[float, float, float, int]]:
    """Returns (scheduled, sent, answered, status) per request; status 0 = transport error."""
    n = int(rate * duration)
    start = now() + 0.2
    out: list[tuple[float, float, float, int]] = []

    async def one(i: int) -> None:
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - now()))
        sent = now()
        token, dialog_id = dialogs[i % len(dialogs)]
        url = f"{base_url}/api/dialogs/{dialog_id}/messages"
        headers = {"Authorization": f"Bearer {token}", **JSON}
        status = 0
        try:
            async with asyncio.timeout(timeout):
                body = orjson.dumps({"content": f"accept {i}"})
                async with http.post(url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        out.append((scheduled, sent, now(), status))

    await asyncio.gather(*(one(i) for i in range(n)))
    return out


# The baseline: the openai SDK straight to the fake LLM.


async def llm_ttft_baseline(
    base_url: str, api_key: str, streams: int, warmup: float, duration: float, timeout: float = 30.0
) -> tuple[list[float], Counter[str]]:
    """Closed loop of ``streams`` concurrent streaming completions; time to the first content token of each
    stream started after ``warmup`` seconds (connections are set up by then).

    Same client setup as the worker's provider: ``AsyncOpenAI`` on the aiohttp transport, raw stream.
    """
    import httpx2
    import openai

    client = openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        timeout=openai.Timeout(timeout, connect=10),
        http_client=openai.DefaultAioHttpClient(
            timeout=openai.Timeout(timeout, connect=10), limits=httpx2.Limits(max_connections=1000)
        ),
    )
    ttfts: list[float] = []
    errors: Counter[str] = Counter()
    messages = [
        {"role": "system", "content": "You are a benchmark assistant."},
        {"role": "user", "content": "bench question 0.0"},
    ]
    measure_from = now() + warmup
    stop_at = measure_from + duration

    async def one_stream() -> None:
        t0 = now()
        first = math.nan
        async with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            temperature=0.7,
            max_tokens=1024,
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            async for line in response.iter_lines():
                if math.isnan(first) and line.startswith("data:") and line[5:].strip() != "[DONE]":
                    chunk = orjson.loads(line[5:])
                    if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
                        first = now() - t0
        if math.isnan(first):
            raise TurnError("no_content")
        if t0 >= measure_from:
            ttfts.append(first)

    async def worker(i: int) -> None:
        await asyncio.sleep(random.uniform(0, 0.5))
        for _ in range(100_000):
            if now() >= stop_at:
                return
            try:
                async with asyncio.timeout(timeout):
                    await one_stream()
            except (openai.OpenAIError, TurnError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                await asyncio.sleep(0.1)

    try:
        await asyncio.gather(*(worker(i) for i in range(streams)))
    finally:
        await client.close()
    return ttfts, errors
