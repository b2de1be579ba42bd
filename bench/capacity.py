"""Capacity benchmark: the whole stack as ``make run`` starts it, saturated by dialogs with growing histories.

    .venv/bin/python bench/capacity.py [--quick] [--broker amqp://guest:guest@127.0.0.1:5672/<vhost>]

Starts an embedded Postgres (``.data/bench-postgres``, database ``chatai_capacity``), uses a Redis db of its
own (flushed), the fake OpenAI-compatible model (``--tokens`` words over ``--reply-seconds``), and every
process of ``deploy/Procfile``: one uvicorn API process, one worker per queue of ``core/queues.py``
(``workers.run.worker_argv``), the Telegram poller, beat and Flower; billing on.

Each dialog posts a ``--words``-word message, waits for its reply to end on its WebSocket, and posts the
next one; dialogs are reused from level to level, so their histories grow up to the history window
(``CHATAI_LLM_HISTORY_MESSAGES``) and stay there. Phases:

1. a ramp of closed loops over more and more dialogs, until turns/s stop growing: the saturation rate;
2. paced loops at 50 % and 80 % of that rate, and the saturating closed loop again (100 %).

It prints one table: turns/s at saturation, CPU ms per turn of every process kind (psutil process trees;
Redis from ``INFO cpu``, RabbitMQ from its ``beam.smp``), POST → 202 and the first-delta overhead (first
``reply.delta`` minus the model's own first-token delay, from before the POST) at each load, memory (RSS of
each process tree), and the first resource to saturate. ``--py-spy KIND:FILE`` records one process kind
(``api``, ``worker-billing`` …) with py-spy during the saturation window (``bench/profile_summary.py FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402

from bench import load  # noqa: E402
from bench.stack import LOG_DIR, BenchStack  # noqa: E402
from bench.stats import own_cpu_seconds, p50, p99, tree_cpu_seconds  # noqa: E402
from core.queues import QUEUES  # noqa: E402
from tests.fixtures.processes import Child, eventually, free_port, python_argv  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "capacity.md"
# A customer-support sentence; messages are cut from it, shifted by one word per turn.
SENTENCE = (
    "please explain how the order was shipped and when the parcel should arrive at the office because the "
    "customer asked twice already and we would like a clear answer with the tracking number and the "
    "carrier name today"
)
WORDS = tuple(SENTENCE.split(" "))


@dataclass(frozen=True)
class Config:
    quick: bool
    redis_url: str = "redis://127.0.0.1:6379/12"
    broker: str = ""  # empty: the Redis db
    reply_seconds: float = 0.25  # the model's whole reply
    tokens: int = 50
    words: int = 47  # words per user message
    owners: int = 10
    levels: tuple[int, ...] = (4, 8, 12, 16, 24, 32, 48, 64)
    warmup: float = 5.0
    window: float = 20.0
    turn_timeout: float = 60.0
    py_spy: tuple[tuple[str, str], ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def quick_mode(cls) -> Config:
        return cls(quick=True, levels=(4, 8, 16, 32, 48), warmup=3.0, window=8.0)

    @property
    def token_delay_ms(self) -> float:
        return self.reply_seconds * 1000 / max(1, self.tokens - 1)


def message_text(n: int, words: int) -> str:
    """A ``words``-word message, different per turn (the fake model echoes it back)."""
    return " ".join(WORDS[(n + i) % len(WORDS)] for i in range(words))


# The stack.


class CapacityStack(BenchStack):
    """Every process of deploy/Procfile, on the bench's own database and Redis db."""

    def __init__(self, cfg: Config) -> None:
        extra = {
            "CHATAI_METRICS_PORT": "0",  # fixed metrics ports would collide with other stacks on the host
            **({"CELERY_BROKER_URL": cfg.broker} if cfg.broker else {}),
            **dict(cfg.extra_env),
        }
        llm_threads = QUEUES["llm"].concurrency
        super().__init__(cfg.redis_url, llm_threads, "INFO", extra, db_name="chatai_capacity")
        self.cfg = cfg
        self.workers: dict[str, Child] = {}
        self.others: dict[str, Child] = {}
        self.flower_port = 0

    def start(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for old in LOG_DIR.glob("*.log"):
            old.unlink()
        self.redis.flushdb()
        self.start_database()
        env = self.env()
        from tests.fixtures.stack import FakeLLM, Stack

        self.fake_llm = FakeLLM(
            LOG_DIR, env, api_key="bench-key", tokens=str(self.cfg.tokens),
            token_delay_ms=f"{self.cfg.token_delay_ms:.3f}",
        )  # fmt: skip
        env.update(self.fake_llm.env)
        self.stack = Stack(env, LOG_DIR)
        self.api = self.stack.start_api(self.api_processes)
        for queue in QUEUES:
            self.workers[queue] = self.stack.start_worker(queue)
        self.worker = self.workers["llm"]
        self.others["telegram-poller"] = self.stack._spawn(
            "telegram-poller", python_argv("-m", "workers.telegram_poller")
        )
        self.others["beat"] = self.stack.start_beat()
        self.flower_port = free_port()
        flower = self.stack._spawn(
            "flower",
            python_argv(
                "-m", "celery", "-A", "workers.app", "flower", "--address=127.0.0.1",
                f"--port={self.flower_port}", "--basic-auth=admin:admin",
            ),
        )  # fmt: skip
        self.others["flower"] = flower

        def flower_answers() -> bool:
            if flower.proc.poll() is not None:
                raise RuntimeError(f"flower exited:\n{flower.log_text()[-3000:]}")
            try:
                httpx.get(f"http://127.0.0.1:{self.flower_port}/healthcheck", timeout=1)
            except httpx.TransportError:
                return False
            return True

        eventually(flower_answers, 60, "Flower to answer")

    def processes(self) -> dict[str, int]:
        """Process kind → pid of the tree to measure."""
        out: dict[str, int] = {}
        if self.api is not None:
            out["api"] = self.api.proc.pid
        for queue, child in self.workers.items():
            out[f"worker-{queue}"] = child.proc.pid
        for name, child in self.others.items():
            out[name] = child.proc.pid
        if (pid := self.postmaster_pid) is not None:
            out["postgres"] = pid
        if self.fake_llm is not None:
            out["fake-llm"] = self.fake_llm.child.proc.pid
        return out

    def cpu_snapshot(self) -> dict[str, float]:
        snap = {name: tree_cpu_seconds(pid) for name, pid in self.processes().items()}
        base = super().cpu_snapshot()
        if "redis" in base:
            snap["redis"] = base["redis"]
        snap["machine"] = base["machine"]
        if self.cfg.broker.startswith("amqp"):
            snap["rabbitmq"] = sum(
                tree_cpu_seconds(p.pid) for p in psutil.process_iter(["name"]) if p.info["name"] == "beam.smp"
            )
        return snap

    def rss(self) -> dict[str, float]:
        """Resident memory (bytes) of each process tree."""
        out = {}
        for name, pid in self.processes().items():
            try:
                proc = psutil.Process(pid)
                procs = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            total = 0
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += p.memory_info().rss
            out[name] = float(total)
        with contextlib.suppress(Exception):
            out["redis"] = float(self.redis.info("memory")["used_memory_rss"])
        return out

    def open_reply_holds(self) -> int:
        """Reply holds not settled yet: the billing backlog."""
        with psycopg.connect(self._db_uri()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM transactions h WHERE h.kind = 'hold'"
                " AND h.idempotency_key LIKE 'hold:%' AND NOT EXISTS"
                " (SELECT 1 FROM transactions r WHERE r.idempotency_key = 'release:' || h.reference)"
            ).fetchone()
        return int(row[0]) if row else 0

    def check_alive(self) -> None:
        for child in [self.api, *self.workers.values(), *self.others.values()]:
            if child is not None and child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited:\n{child.log_text()[-3000:]}")


# One load level.


@dataclass
class LevelResult:
    label: str
    dialogs: int
    turns: list[load.Turn]
    errors: Counter[str]
    window: float
    cpu: dict[str, float]  # CPU seconds over the window by process kind (+ bench-client, machine)
    rss: dict[str, float]
    billing_backlog: int = 0
    completed: int = 0
    history: float = math.nan  # mean turns already in the dialog when a measured turn was posted
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.completed / self.window


async def run_level(
    stack: CapacityStack,
    cfg: Config,
    sockets: list[load.DialogSocket],
    turn_counts: list[int],
    label: str,
    period: float = 0.0,
    py_spy: tuple[tuple[str, str], ...] = (),
) -> LevelResult:
    """A closed loop over ``sockets`` (each posts as soon as its reply ended, or every ``period`` s at
    most), measured over ``cfg.window`` after ``cfg.warmup``."""
    stack.check_alive()
    rng = random.Random(len(sockets))
    turns: list[tuple[load.Turn, int]] = []
    errors: Counter[str] = Counter()
    cpu: dict[str, float] = {}
    rss: dict[str, float] = {}
    start = load.now() + 0.2
    w0 = start + cfg.warmup
    w1 = w0 + cfg.window
    stagger = min(period or 0.5, 2.0)

    async def window() -> None:
        await asyncio.sleep(max(0.0, w0 - load.now()))
        spies = start_py_spy(stack, py_spy, cfg.window)
        s0, c0 = stack.cpu_snapshot(), own_cpu_seconds()
        await asyncio.sleep(max(0.0, w1 - load.now()))
        s1, c1 = stack.cpu_snapshot(), own_cpu_seconds()
        cpu.update({k: s1[k] - s0[k] for k in s0 if k in s1})
        cpu["bench-client"] = c1 - c0
        rss.update(stack.rss())
        for spy in spies:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=30)

    async def dialog(i: int, sock: load.DialogSocket, http: object) -> None:
        await asyncio.sleep(max(0.0, start + rng.uniform(0, stagger) - load.now()))
        next_at = load.now()
        while True:
            await asyncio.sleep(max(0.0, next_at - load.now()))
            if load.now() >= w1:
                return
            posted = load.now()
            n = turn_counts[i]
            try:
                turn = await sock.turn(http, message_text(n, cfg.words), cfg.turn_timeout)  # type: ignore[arg-type]
            except load.TurnError as exc:
                errors[exc.kind] += 1
                next_at = load.now() + 0.2
                continue
            turn_counts[i] += 1
            turns.append((turn, n))
            next_at = posted + period if period else load.now()

    http = load.http_session(limit=0, timeout=cfg.turn_timeout)
    try:
        await asyncio.gather(window(), *(dialog(i, s, http) for i, s in enumerate(sockets)))
    finally:
        await http.close()
    completed = [t for t, _ in turns if w0 <= t[3] < w1 and t[4] == "reply.completed"]
    started = [n for t, n in turns if w0 <= t[0] < w1]
    result = LevelResult(
        label, len(sockets), [t for t, _ in turns if w0 <= t[0] < w1], errors, cfg.window, cpu, rss,
        completed=len(completed), history=sum(started) / len(started) if started else math.nan,
    )  # fmt: skip
    result.billing_backlog = await asyncio.to_thread(stack.open_reply_holds)
    await asyncio.to_thread(wait_settled, stack, 120)
    return result


def wait_settled(stack: CapacityStack, timeout: float) -> None:
    """Let replies and their settlements finish before the next level, so its window starts clean."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.unfinished_replies() == 0 and stack.open_reply_holds() == 0:
            return
        time.sleep(0.5)
    print("  (backlog not drained before the next level)", file=sys.stderr, flush=True)


def start_py_spy(
    stack: CapacityStack, specs: tuple[tuple[str, str], ...], duration: float
) -> list[subprocess.Popen[bytes]]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    pids = stack.processes()
    spies = []
    for kind, path in specs:
        argv = [
            exe, "record", "--pid", str(pids[kind]), "--duration", str(max(1, int(duration - 1))),
            "--format", "raw", "-o", path, "--rate", "100", "--nonblocking", "--subprocesses",
        ]  # fmt: skip
        spies.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return spies


# The run.


async def run(stack: CapacityStack, cfg: Config) -> tuple[list[LevelResult], dict[str, LevelResult]]:
    base_url, ws_url = stack.stack.base_url, stack.stack.ws_url  # type: ignore[union-attr]
    async with load.http_session(limit=64) as http:
        owners = await load.create_owners(http, base_url, cfg.owners)
        dialogs = await load.create_dialogs(http, base_url, owners, max(cfg.levels))
    ws_http = load.http_session(limit=0)
    sockets = [load.DialogSocket(base_url, ws_url, token, d, deflate=True) for token, d in dialogs]
    turn_counts = [0] * len(sockets)
    try:
        sem = asyncio.Semaphore(32)

        async def open_one(sock: load.DialogSocket) -> None:
            async with sem:
                await sock.open(ws_http)

        await asyncio.gather(*(open_one(s) for s in sockets))
        progress(f"{len(sockets)} dialogs over {cfg.owners} owners, WebSockets open")
        ramp: list[LevelResult] = []
        best: LevelResult | None = None
        for level in cfg.levels:
            result = await run_level(stack, cfg, sockets[:level], turn_counts, f"{level} dialogs")
            ramp.append(result)
            progress(
                f"ramp {level} dialogs: {result.rate:.1f} turns/s, machine CPU "
                f"{result.cpu.get('machine', math.nan) / cfg.window * 100:.0f}%, errors {dict(result.errors)}"
            )
            if best is not None and result.rate < best.rate * 1.05:
                break  # more dialogs no longer buy turns: saturated
            if best is None or result.rate > best.rate:
                best = result
        assert best is not None
        saturated = sockets[: best.dialogs]
        loads: dict[str, LevelResult] = {}
        for share in (0.5, 0.8):
            period = best.dialogs / (best.rate * share)
            loads[f"{share:.0%}"] = await run_level(
                stack, cfg, saturated, turn_counts, f"{share:.0%}", period=period
            )
            progress(f"{share:.0%} of saturation: {loads[f'{share:.0%}'].rate:.1f} turns/s")
        loads["100%"] = await run_level(stack, cfg, saturated, turn_counts, "100%", py_spy=cfg.py_spy)
        progress(f"saturation again: {loads['100%'].rate:.1f} turns/s")
        return ramp, loads
    finally:
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
        await ws_http.close()


_T0 = time.monotonic()


def progress(done: str) -> None:
    print(f"  {time.monotonic() - _T0:5.1f} s: {done}", file=sys.stderr, flush=True)


# The table.

SERVER_KINDS_LAST = ("postgres", "redis", "rabbitmq")
NOT_THE_STACK = ("fake-llm", "bench-client", "machine")


def kinds(result: LevelResult) -> list[str]:
    names = [k for k in result.cpu if k not in NOT_THE_STACK and k not in SERVER_KINDS_LAST]
    return names + [k for k in SERVER_KINDS_LAST if k in result.cpu]


def ms_per_turn(result: LevelResult, kind: str) -> float:
    return result.cpu.get(kind, math.nan) / result.completed * 1000 if result.completed else math.nan


def first_saturated(result: LevelResult, cores: int) -> str:
    """What ran out first at saturation: the machine's cores, or one process's core (its GIL)."""
    busy = {k: v / result.window for k, v in result.cpu.items() if k not in ("machine", "bench-client")}
    machine = result.cpu.get("machine", math.nan) / result.window
    top = max((k for k in busy if k != "redis"), key=lambda k: busy[k])
    elsewhere = outside(result) / result.window
    if machine >= 0.8 * cores:
        return (
            f"the machine's CPU ({machine * 100:.0f}% of {cores * 100}%, of which {elsewhere * 100:.0f}% "
            f"outside this run); the biggest user here: {top} ({busy[top] * 100:.0f}% of a core)"
        )
    if busy[top] >= 0.85:
        return f"{top}: {busy[top] * 100:.0f}% of one core (one process, one GIL)"
    return (
        f"no CPU (machine {machine * 100:.0f}% of {cores * 100}%, {elsewhere * 100:.0f}% outside this run); "
        "the wait is elsewhere"
    )


def fmt_ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:.0f}"


def render(cfg: Config, ramp: list[LevelResult], loads: dict[str, LevelResult], elapsed: float) -> str:
    cores = os.cpu_count() or 1
    sat = loads["100%"]
    order = ["50%", "80%", "100%"]
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    mode = "--quick" if cfg.quick else "full"
    broker = cfg.broker.rsplit("@", 1)[-1] if cfg.broker else f"Redis {cfg.redis_url}"
    lines = [
        f"## capacity ({mode}) — {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Machine: nproc={cores}, {cpu}, Python {platform.python_version()}. Run took {elapsed:.0f} s. "
        f"Broker: {broker}.",
        "",
        "| measure | 50 % of saturation | 80 % | saturation |",
        "|---|---|---|---|",
    ]

    def row(name: str, cell: object) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(loads[k]) for k in order) + " |")  # type: ignore[operator]

    row("**turns/s**", lambda r: f"{r.rate:.1f}" + (" **(saturation)**" if r is sat else ""))
    row("dialogs / mean turns of history at POST", lambda r: f"{r.dialogs} / {r.history:.0f}")
    row("POST → 202 p50 / p99 (ms)", lambda r: f"{fmt_ms(p50(accepts(r)))} / {fmt_ms(p99(accepts(r)))}")
    row(
        "first-delta overhead p50 / p99 (ms)",
        lambda r: f"{fmt_ms(p50(overheads(r, cfg)))} / {fmt_ms(p99(overheads(r, cfg)))}",
    )
    row("POST → reply.completed p50 (ms)", lambda r: fmt_ms(p50([t[3] - t[0] for t in completed(r)])))
    for kind in kinds(sat):
        row(f"CPU ms/turn: {kind}", lambda r, k=kind: f"{ms_per_turn(r, k):.1f}")
    row(
        "CPU ms/turn: **whole stack**",
        lambda r: f"**{sum(ms_per_turn(r, k) for k in kinds(r) if not math.isnan(ms_per_turn(r, k))):.1f}**",
    )
    for kind in ("fake-llm", "bench-client"):
        row(f"CPU ms/turn: {kind} (not the stack)", lambda r, k=kind: f"{ms_per_turn(r, k):.1f}")
    row("machine CPU (% of one core)", lambda r: f"{r.cpu.get('machine', math.nan) / r.window * 100:.0f}%")
    row("of which outside this run (% of one core)", lambda r: f"{outside(r) / r.window * 100:.0f}%")
    row("billing backlog at window end (open holds)", lambda r: str(r.billing_backlog))
    for kind in sorted(sat.rss):
        row(f"RSS: {kind} (MB)", lambda r, k=kind: f"{r.rss.get(k, math.nan) / 2**20:.0f}")
    row("client errors", lambda r: ", ".join(f"{k} {v}" for k, v in r.errors.items()) or "none")
    lines += [
        "",
        f"**First resource to saturate:** {first_saturated(sat, cores)}.",
        "",
        "Ramp (closed loops, dialogs → turns/s): "
        + ", ".join(f"{r.dialogs} → {r.rate:.1f}" for r in ramp)
        + ".",
        "",
        f"Settings: every process of deploy/Procfile (1 uvicorn API process, one worker per queue "
        f"({', '.join(QUEUES)}) with the registry's pools, the Telegram poller, beat, Flower), billing on, "
        f"rate limits off; fake model {cfg.tokens} words over {cfg.reply_seconds:g} s; user messages "
        f"{cfg.words} words; dialogs over {cfg.owners} owners, one WebSocket each; warm-up "
        f"{cfg.warmup:g} s, window {cfg.window:g} s per level; 50 % and 80 % pace each saturating dialog "
        "to that share of the saturation rate. CPU = user+system of each process tree over the window "
        "(psutil); Redis from `INFO cpu` (the whole server, shared with anything else on it). "
        "First-delta overhead = first `reply.delta` on the WebSocket minus the POST's start minus the "
        "model's first-token delay (0). RSS sums each process tree (prefork children included)."
        + (f" Extra env: {dict(cfg.extra_env)}." if cfg.extra_env else ""),
    ]
    return "\n".join(lines) + "\n"


def outside(r: LevelResult) -> float:
    """CPU seconds the machine spent on processes that are not this run's (a shared machine)."""
    ours = sum(v for k, v in r.cpu.items() if k != "machine" and not math.isnan(v))
    return max(0.0, r.cpu.get("machine", math.nan) - ours)


def completed(r: LevelResult) -> list[load.Turn]:
    return [t for t in r.turns if t[4] == "reply.completed"]


def accepts(r: LevelResult) -> list[float]:
    return [t[1] - t[0] for t in r.turns]


def overheads(r: LevelResult, cfg: Config) -> list[float]:
    first_token = 0.0  # the fake model's first-token delay: it streams its first word at once
    return [t[2] - t[0] - first_token for t in completed(r) if not math.isnan(t[2])]


def parse_args(argv: list[str] | None = None) -> tuple[Config, str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter levels (a few minutes)")
    parser.add_argument("--broker", default="", help="CELERY_BROKER_URL, e.g. amqp://guest:guest@host/vhost")
    parser.add_argument("--redis-url", default=None, help="the stack's Redis db (flushed)")
    parser.add_argument("--reply-seconds", type=float, default=None, help="the fake model's reply time")
    parser.add_argument("--levels", default=None, help="comma-separated dialog counts of the ramp")
    parser.add_argument("--window", type=float, default=None, help="measured seconds per level")
    parser.add_argument("--owners", type=int, default=None)
    parser.add_argument("--py-spy", action="append", default=[], metavar="KIND:FILE")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the table ('' = nowhere)")
    args = parser.parse_args(argv)
    cfg = Config.quick_mode() if args.quick else Config(quick=False)
    changes: dict[str, object] = {"broker": args.broker}
    if args.redis_url:
        changes["redis_url"] = args.redis_url
    if args.reply_seconds is not None:
        changes["reply_seconds"] = args.reply_seconds
    if args.levels:
        changes["levels"] = tuple(int(n) for n in args.levels.split(","))
    if args.window is not None:
        changes["window"] = args.window
    if args.owners is not None:
        changes["owners"] = args.owners
    if args.py_spy:
        changes["py_spy"] = tuple(tuple(spec.split(":", 1)) for spec in args.py_spy)
    if args.env:
        changes["extra_env"] = tuple(tuple(e.split("=", 1)) for e in args.env)
    return replace(cfg, **changes), args.out  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    cfg, out = parse_args(argv)
    started = time.monotonic()
    stack = CapacityStack(cfg)
    try:
        print("starting Postgres, the fake model and the whole stack …", file=sys.stderr, flush=True)
        stack.start()
        progress(f"stack up (logs in {LOG_DIR})")
        ramp, loads = load.run_loop(run(stack, cfg))
    finally:
        print("stopping …", file=sys.stderr, flush=True)
        stack.stop()
    table = render(cfg, ramp, loads, time.monotonic() - started)
    print(table)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
