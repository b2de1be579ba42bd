"""WebSocket fan-out benchmark: one API process (uvicorn, as deployed) holding 10,000 sockets.

    .venv/bin/python -m bench.ws_fanout [--sockets 10000] [--rate 2000] [--seconds 20] [--slow 20]

Every socket authenticates with an ``auth`` frame and subscribes to a dialog of its own (``dialog:<id>``,
live only). Clients run in ``--client-procs`` processes of their own (asyncio, ``websockets``). Events
are published as the workers publish them (``core.events.EventBus``: XADD to the topic's stream and
PUBLISH, one Lua script, pipelined).

It reports:
- the API's RSS per socket: (RSS with every socket subscribed - RSS idle) / sockets;
- delivery latency from the XADD (the event id's time, on Redis's clock on this machine) to the frame
  received, p50/p99, at ``--rate`` events/s spread uniformly over the sockets' topics;
- slow consumers: ``--slow`` sockets stop reading while their topics get a burst; each must be closed
  with 4008 and the API's memory must come back;
- a reconnect storm: every socket drops, one event per topic is published while they are away, then
  all reconnect at once with their ``last_event_id`` while live events keep flowing; the time until
  every socket has its replay and ``subscribed``, and whether every socket received every event of
  its topic.

Postgres is the embedded server of ``bench/stack.py`` (its own data dir and database); Redis db
``--redis-db`` is flushed at start. The file-descriptor limit is raised to the hard limit for the API
and the clients (children inherit it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import platform
import random
import resource
import shlex
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import psycopg

from bench.stack import BenchStack
from bench.stats import p50, p99
from tests.fixtures.api import new_assistant, open_dialog, signup
from tests.fixtures.processes import Child, eventually, free_port, python_argv

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "ws_fanout.md"
TARGET_KB_PER_SOCKET = 50.0
TARGET_P99_MS = 50.0
TARGET_STORM_S = 10.0
# Spare descriptors for the API beyond its sockets: Redis, Postgres, listening socket, files.
FD_HEADROOM = 500


@dataclass
class Config:
    sockets: int = 10_000
    rate: float = 2000.0
    seconds: float = 20.0
    slow: int = 20
    # Events per slow socket's topic: more than the kernel's socket buffers (a few MB) and the send queue
    # (2000 frames) hold together.
    slow_burst: int = 8000
    slow_event_bytes: int = 1000
    users: int = 100
    client_procs: int = 2
    connect_concurrency: int = 200  # connects in flight per client process
    redis_db: int = 14
    ws: str = "auto"  # uvicorn's WebSocket implementation (--ws)
    deflate: str | None = None  # --ws-per-message-deflate; None: as the systemd unit runs the API
    extra_env: dict[str, str] = field(default_factory=dict)


# --- clients (their own processes) ---------------------------------------------------------------------


@dataclass
class _Socket:
    index: int
    token: str
    topic: str
    ws: Any = None
    last_id: str | None = None
    reader: asyncio.Task[None] | None = None
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    received: list[str] = field(default_factory=list)  # event ids since the last reset


class _ClientProcess:
    def __init__(self, ws_url: str, assignments: list[tuple[int, str, str]], concurrency: int) -> None:
        self.ws_url = ws_url
        self.sockets = [_Socket(i, token, topic) for i, token, topic in assignments]
        self.gate = asyncio.Semaphore(concurrency)
        self.latencies: list[float] = []
        self.record = False

    async def _open(self, s: _Socket, resume: bool) -> float:
        from websockets.asyncio.client import connect

        s.subscribed.clear()
        s.reading.set()
        s.close_code = None
        async with self.gate:
            started = time.monotonic()
            # A small receive buffer, set before connecting so the advertised window stays small too: a
            # socket that stops reading backs up onto the server instead of into the kernel here.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.setblocking(False)
            port = int(self.ws_url.split(":")[2].split("/")[0])
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            s.ws = await connect(self.ws_url, sock=sock, open_timeout=60, ping_interval=None, max_queue=16)
            await s.ws.send(orjson.dumps({"type": "auth", "token": s.token}).decode())
            last = s.last_id if resume else None
            await s.ws.send(
                orjson.dumps({"type": "subscribe", "topic": s.topic, "last_event_id": last}).decode()
            )
            s.reader = asyncio.create_task(self._read(s))
            await asyncio.wait_for(s.subscribed.wait(), 120)
            return time.monotonic() - started

    async def _read(self, s: _Socket) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                await s.reading.wait()
                raw = await s.ws.recv()
                now = time.time()
                frame = orjson.loads(raw)
                event_id = frame.get("id")
                if event_id is None:
                    if frame.get("type") == "subscribed":
                        s.subscribed.set()
                    continue
                s.last_id = event_id
                s.received.append(event_id)
                if self.record and frame.get("type") == "bench.live":
                    self.latencies.append((now - int(event_id.split("-")[0]) / 1000) * 1000)
        except ConnectionClosed as closed:
            s.close_code = closed.rcvd.code if closed.rcvd is not None else None

    async def connect_all(self, resume: bool) -> dict[str, Any]:
        started = time.monotonic()
        results = await asyncio.gather(*(self._open(s, resume) for s in self.sockets), return_exceptions=True)
        times = [r for r in results if isinstance(r, float)]
        errors = [repr(r) for r in results if not isinstance(r, float)]
        return {
            "ok": len(times), "failed": len(errors), "errors": errors[:3],
            "elapsed": time.monotonic() - started, "times": times,
        }  # fmt: skip

    async def drop_all(self) -> None:
        async def drop(s: _Socket) -> None:
            if s.reader is not None:
                s.reader.cancel()
            if s.ws is not None:
                s.ws.transport.abort()  # as when a network or the API goes away: no close handshake

        await asyncio.gather(*(drop(s) for s in self.sockets))
        await asyncio.sleep(0.1)

    async def serve(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, arg = await loop.run_in_executor(None, conn.recv)
            if command == "connect":
                reply: Any = await self.connect_all(resume=bool(arg))
            elif command == "record":
                if arg:
                    self.latencies = []
                self.record = bool(arg)
                reply = None
            elif command == "latencies":
                reply, self.latencies = self.latencies, []
            elif command == "reset_received":
                for s in self.sockets:
                    s.received = []
                reply = None
            elif command == "received":
                reply = {s.index: (s.topic, s.received) for s in self.sockets}
            elif command == "pause":
                for s in self.sockets:
                    if s.index in arg:
                        s.reading.clear()
                reply = None
            elif command == "resume_paused":
                paused = [s for s in self.sockets if not s.reading.is_set()]
                for s in paused:
                    s.reading.set()
                # A socket the API has not closed keeps its reader going: give up on it after a while.
                readers = [s.reader for s in paused if s.reader]
                if readers:
                    await asyncio.wait(readers, timeout=30)
                reply = {s.index: s.close_code for s in paused}
            elif command == "drop":
                await self.drop_all()
                reply = None
            elif command == "stop":
                await self.drop_all()
                conn.send(None)
                return
            else:
                reply = f"unknown command {command}"
            conn.send(reply)


def _client_main(
    conn: Connection, ws_url: str, assignments: list[tuple[int, str, str]], concurrency: int
) -> None:
    _raise_fd_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def run() -> None:
        await _ClientProcess(ws_url, assignments, concurrency).serve(conn)

    asyncio.run(run())


class Clients:
    def __init__(self, ws_url: str, assignments: list[tuple[int, str, str]], procs: int, concurrency: int):
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for k in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_client_main, args=(child, ws_url, assignments[k::procs], concurrency), daemon=True
            )
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def ask(self, command: str, arg: Any = None) -> list[Any]:
        for pipe in self.pipes:
            pipe.send((command, arg))
        return [pipe.recv() for pipe in self.pipes]

    async def aask(self, command: str, arg: Any = None) -> list[Any]:
        return await asyncio.get_running_loop().run_in_executor(None, self.ask, command, arg)

    def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self.ask("stop")
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


# --- setup ----------------------------------------------------------------------------------------------


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


_COPY_DIALOGS = """
INSERT INTO dialogs
SELECT (jsonb_populate_record(d, jsonb_build_object('id', gen_random_uuid()))).*
FROM dialogs AS d, generate_series(1, %(copies)s)
WHERE d.id = %(dialog)s
RETURNING id
"""


async def _accounts(base_url: str, db_uri: str, cfg: Config) -> list[tuple[int, str, str]]:
    """(index, access token, topic) per socket: ``cfg.users`` users, each owning its share of dialogs
    (one made through the API, the rest copied from it in SQL)."""
    per_user = -(-cfg.sockets // cfg.users)
    out: list[tuple[int, str, str]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        gate = asyncio.Semaphore(20)

        async def one(u: int) -> tuple[str, str]:
            async with gate:
                account = await signup(http, f"ws{u}")
                assistant = await new_assistant(http, account)
                return account.access_token, await open_dialog(http, account, assistant)

        users = await asyncio.gather(*(one(u) for u in range(cfg.users)))
    with psycopg.connect(db_uri, autocommit=True) as conn:
        for token, dialog in users:
            rows = conn.execute(_COPY_DIALOGS, {"copies": per_user - 1, "dialog": dialog}).fetchall()
            for dialog_id in [dialog, *(str(r[0]) for r in rows)]:
                if len(out) < cfg.sockets:
                    out.append((len(out), token, f"dialog:{dialog_id}"))
    return out


def _deployed_ws_options(deflate: str | None) -> list[str]:
    """The ``--ws-…`` options of the systemd unit's uvicorn command (``deflate`` overrides one)."""
    unit = (ROOT / "deploy" / "systemd" / "chatai-api@.service").read_text()
    [command] = [line.partition("=")[2] for line in unit.splitlines() if line.startswith("ExecStart=")]
    words = shlex.split(command)
    options = {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--ws-")}
    if deflate is not None:
        options["--ws-per-message-deflate"] = deflate
    return [word for pair in options.items() for word in pair]


def _start_api(stack: BenchStack, ws: str, deflate: str | None) -> tuple[Child, str]:
    """One uvicorn process started as the systemd unit starts it."""
    port = free_port()
    argv = python_argv(
        "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "--backlog", "4096", "--ws", ws,
        *_deployed_ws_options(deflate),
    )  # fmt: skip
    env = stack.env()
    api = Child("api", argv, env, Path(env["CHATAI_DATA_DIR"]))
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if api.proc.poll() is not None:
            raise RuntimeError(f"api exited:\n{api.log_text()[-4000:]}")
        try:
            return httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    eventually(healthy, 60, "the API to answer")
    return api, base_url


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def _settled_rss(pid: int, seconds: float = 3.0) -> int:
    """RSS once it has stopped moving (or after ``seconds``)."""
    last, deadline = _rss(pid), time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _rss(pid)
        if abs(now - last) < 256 * 1024:
            return now
        last = now
    return last


# --- publishing -----------------------------------------------------------------------------------------


class Publisher:
    """Events as the workers send them: ``EventBus.publish_nowait`` on an async Redis client."""

    def __init__(self, redis_url: str) -> None:
        import redis.asyncio as aioredis

        from core.events import EventBus

        self.client = aioredis.Redis.from_url(redis_url)
        self.bus = EventBus(async_client=self.client)
        self.sent: list[tuple[str, str]] = []  # (topic, id) of every event published

    async def burst(self, topics: list[str], event_type: str, data: dict[str, Any]) -> None:
        futures = [self.bus.publish_nowait(topic, event_type, data) for topic in topics]
        ids = await asyncio.gather(*futures)
        self.sent += list(zip(topics, ids, strict=True))

    async def steady(
        self, topics: list[str], rate: float, seconds: float, event_type: str = "bench.live"
    ) -> int:
        """``rate`` events/s for ``seconds``, each to a random topic, in ticks of 5 ms."""
        tick, sent, started = 0.005, 0, time.monotonic()
        futures: list[tuple[str, asyncio.Future[str]]] = []
        data = {"message_id": "00000000-0000-0000-0000-000000000000", "delta": " word", "seq": 0}
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(due):
                topic = random.choice(topics)
                futures.append((topic, self.bus.publish_nowait(topic, event_type, data)))
            sent += max(0, due)
            await asyncio.sleep(tick)
        for topic, future in futures:
            self.sent.append((topic, await future))
        return sent

    async def close(self) -> None:
        await self.client.aclose()


# --- the run --------------------------------------------------------------------------------------------


@dataclass
class Results:
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, measure: str, value: str, target: str = "") -> None:
        self.rows.append((measure, value, target))
        print(f"  {measure}: {value} {target}", flush=True)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


async def run(cfg: Config) -> Results:
    res = Results()
    hard = _raise_fd_limit()
    need_api = cfg.sockets + FD_HEADROOM
    need_clients = cfg.sockets // cfg.client_procs + FD_HEADROOM
    if hard < max(need_api, need_clients):
        res.notes.append(f"RLIMIT_NOFILE hard limit {hard} is below the {need_api} descriptors needed")
    redis_url = f"redis://127.0.0.1:6379/{cfg.redis_db}"
    stack = BenchStack(redis_url, llm_concurrency=1, log_level="WARNING", extra_env=cfg.extra_env)
    stack.redis.flushdb()
    stack.start_database()
    api, base_url = _start_api(stack, cfg.ws, cfg.deflate)
    stack.api = api
    clients: Clients | None = None
    publisher = Publisher(redis_url)
    try:
        print("setting up users and dialogs", flush=True)
        assignments = await _accounts(base_url, stack._db_uri(), cfg)
        topics = [t for _, _, t in assignments]
        ws_url = base_url.replace("http://", "ws://") + "/api/ws"
        clients = Clients(ws_url, assignments, cfg.client_procs, cfg.connect_concurrency)

        # Warm the gateway (imports, pools) with one socket's worth of work, then the idle figure.
        warm = Clients(ws_url, assignments[:1], 1, 1)
        warm.ask("connect", False)
        warm.stop()
        idle = _settled_rss(api.proc.pid)
        cpu0 = psutil.Process(api.proc.pid).cpu_times()

        print(f"connecting {cfg.sockets} sockets", flush=True)
        connected = await clients.aask("connect", False)
        ok = sum(c["ok"] for c in connected)
        elapsed = max(c["elapsed"] for c in connected)
        cpu1 = psutil.Process(api.proc.pid).cpu_times()
        connect_cpu_ms = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) * 1000 / max(ok, 1)
        full = _settled_rss(api.proc.pid, 5)
        per_socket_kb = (full - idle) / max(ok, 1) / 1024
        res.add(
            "sockets connected and subscribed",
            f"{ok} / {cfg.sockets} in {elapsed:.1f} s",
            f"({sum(c['failed'] for c in connected)} failed; API CPU {connect_cpu_ms:.2f} ms per socket)",
        )
        for c in connected:
            res.notes += [f"connect error: {e}" for e in c["errors"]]
        res.add("API RSS idle / with all sockets", f"{idle / 2**20:.1f} MiB / {full / 2**20:.1f} MiB")
        res.add(
            "API RSS per socket",
            f"{per_socket_kb:.1f} KB",
            f"≤ {TARGET_KB_PER_SOCKET:g} KB: {_verdict(per_socket_kb <= TARGET_KB_PER_SOCKET)}",
        )

        # Steady fan-out.
        print(f"publishing {cfg.rate:g} events/s for {cfg.seconds:g} s", flush=True)
        await clients.aask("record", True)
        cpu0 = psutil.Process(api.proc.pid).cpu_times()
        t0 = time.monotonic()
        sent = await publisher.steady(topics[:ok] if ok else topics, cfg.rate, cfg.seconds)
        wall = time.monotonic() - t0
        await asyncio.sleep(1.0)
        cpu1 = psutil.Process(api.proc.pid).cpu_times()
        await clients.aask("record", False)
        latencies = [x for batch in await clients.aask("latencies") for x in batch]
        api_cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system
        res.add(
            "events published / frames received",
            f"{sent} / {len(latencies)}",
            f"({sent / wall:.0f} events/s achieved)",
        )
        lat50, lat99 = p50(latencies), p99(latencies)
        res.add(
            "delivery XADD → frame, p50 / p99",
            f"{lat50:.1f} / {lat99:.1f} ms",
            f"p99 ≤ {TARGET_P99_MS:g} ms: {_verdict(lat99 <= TARGET_P99_MS)}",
        )
        res.add(
            "API CPU per event delivered",
            f"{api_cpu * 1000 / max(len(latencies), 1):.3f} ms",
            f"({api_cpu / wall * 100:.0f} % of a core)",
        )
        steady_rss = _rss(api.proc.pid)

        # Slow consumers.
        if cfg.slow:
            print(f"{cfg.slow} slow consumers", flush=True)
            slow = random.sample(range(ok), min(cfg.slow, ok))
            slow_topics = [topics[i] for i in slow]
            await clients.aask("pause", set(slow))
            before = _rss(api.proc.pid)
            payload = {"delta": "x" * cfg.slow_event_bytes}
            t0 = time.monotonic()
            peak = before
            for _ in range(cfg.slow_burst // 100):
                await publisher.burst(slow_topics * 100, "bench.slow", payload)
                peak = max(peak, _rss(api.proc.pid))
            burst_s = time.monotonic() - t0
            codes = {k: v for batch in await clients.aask("resume_paused") for k, v in batch.items()}
            closed = sum(1 for code in codes.values() if code == 4008)
            after = _settled_rss(api.proc.pid, 5)
            res.add(
                "slow consumers closed with 4008",
                f"{closed} / {len(slow)}",
                f"({cfg.slow_burst} events of {cfg.slow_event_bytes} B each in {burst_s:.1f} s; "
                f"{_verdict(closed == len(slow))})",
            )
            res.add(
                "API RSS before / peak / after the slow consumers",
                f"{before / 2**20:.1f} / {peak / 2**20:.1f} / {after / 2**20:.1f} MiB",
                f"(after steady fan-out: {steady_rss / 2**20:.1f} MiB)",
            )

        # Reconnect storm.
        print("reconnect storm", flush=True)
        await clients.aask("drop")
        await asyncio.sleep(1.0)
        publisher.sent = []
        await publisher.burst(topics[:ok], "bench.gap", {"missed": True})
        await clients.aask("reset_received")
        live = asyncio.create_task(publisher.steady(topics[:ok], cfg.rate, TARGET_STORM_S + 5))
        t0 = time.monotonic()
        cpu0 = psutil.Process(api.proc.pid).cpu_times()
        reconnected = await clients.aask("connect", True)
        storm_s = time.monotonic() - t0
        cpu1 = psutil.Process(api.proc.pid).cpu_times()
        await live
        received = await _received_when_settled(clients)
        back = sum(c["ok"] for c in reconnected)
        published: dict[str, set[str]] = {}
        for topic, event_id in publisher.sent:
            published.setdefault(topic, set()).add(event_id)
        owners: dict[str, list[set[str]]] = {}
        for topic, ids in received.values():
            owners.setdefault(topic, []).append(set(ids))
        missing = sum(
            len(published.get(topic, set()) - got) for topic, gots in owners.items() for got in gots
        )
        complete = sum(
            1 for topic, gots in owners.items() for got in gots if published.get(topic, set()) <= got
        )
        reconnect_times = [t for c in reconnected for t in c["times"]]
        res.add(
            "reconnect storm: sockets back and subscribed",
            f"{back} / {ok} in {storm_s:.1f} s",
            f"≤ {TARGET_STORM_S:g} s: {_verdict(back == ok and storm_s <= TARGET_STORM_S)}; per socket "
            f"p50 {p50(reconnect_times):.2f} s, p99 {p99(reconnect_times):.2f} s",
        )
        res.add(
            "reconnect storm: sockets with every event of their topic",
            f"{complete} / {ok}",
            f"({missing} events missing; {len(publisher.sent)} published during the storm, "
            f"{ok} of them while the sockets were away)",
        )
        res.add(
            "API CPU per reconnect (auth, subscribe, replay)",
            f"{(cpu1.user + cpu1.system - cpu0.user - cpu0.system) * 1000 / max(back, 1):.2f} ms",
        )
    finally:
        if clients is not None:
            clients.stop()
        await publisher.close()
        api.stop()
        stack.stop()
    return res


async def _received_when_settled(clients: Clients) -> dict[int, tuple[str, list[str]]]:
    """Each socket's (topic, event ids received), once the counts have stopped growing."""
    last = -1
    while True:
        await asyncio.sleep(1.0)
        received = {k: v for batch in await clients.aask("received") for k, v in batch.items()}
        total = sum(len(ids) for _, ids in received.values())
        if total == last:
            return received
        last = total


def _report(cfg: Config, res: Results) -> str:
    lines = [
        "# WebSocket fan-out", "",
        f"`python -m bench.ws_fanout --sockets {cfg.sockets} --rate {cfg.rate:g} --seconds {cfg.seconds:g} "
        f"--slow {cfg.slow} --ws {cfg.ws}"
        + (f" --deflate {cfg.deflate}" if cfg.deflate else "")
        + f"` on {platform.node()} ({os.cpu_count()} cores, shared), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. One uvicorn API process; clients in "
        f"{cfg.client_procs} processes on the same machine.", "",
        "| measure | value | target / note |", "|---|---|---|",
    ]  # fmt: skip
    lines += [f"| {m} | {v} | {t} |" for m, v, t in res.rows]
    if res.notes:
        lines += ["", *[f"- {n}" for n in res.notes]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=Config.sockets)
    parser.add_argument("--rate", type=float, default=Config.rate, help="events/s over all topics")
    parser.add_argument("--seconds", type=float, default=Config.seconds, help="length of the steady phase")
    parser.add_argument("--slow", type=int, default=Config.slow, help="sockets that stop reading")
    parser.add_argument("--users", type=int, default=Config.users)
    parser.add_argument("--client-procs", type=int, default=Config.client_procs)
    parser.add_argument("--redis-db", type=int, default=Config.redis_db)
    parser.add_argument("--ws", default=Config.ws, help="uvicorn's --ws implementation")
    parser.add_argument(
        "--deflate",
        choices=["true", "false"],
        default=None,
        help="uvicorn's --ws-per-message-deflate (default: as deploy/systemd runs the API)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/ws_fanout.md")
    args = parser.parse_args(argv)
    cfg = Config(
        sockets=args.sockets, rate=args.rate, seconds=args.seconds, slow=args.slow, users=args.users,
        client_procs=args.client_procs, redis_db=args.redis_db, ws=args.ws, deflate=args.deflate,
    )  # fmt: skip
    res = asyncio.run(run(cfg))
    report = _report(cfg, res)
    print("\n" + report)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
