"""Soak: the whole stack under steady chat traffic for a long run, watched for leaks and lost work.

Starts the API, one worker per queue of ``core.queues.QUEUES``, the Telegram poller and beat (billing on,
with the fake LLM), on the benchmarks' embedded Postgres and a Redis db of its own. Chat turns are posted
at a fixed ``--rate`` spread over many dialogs. Every ``--sample-seconds`` it prints, per process kind,
resident memory (the process and its children), open Postgres connections (``pg_stat_activity`` by
``application_name``, which each process gets through ``PGAPPNAME``), Redis clients (``CLIENT LIST`` by
the client's port, matched to the process's sockets) and open file descriptors.

At the end, after the replies drain: the growth of each figure from the end of the warm-up to the last
sample (pass: under ``--max-growth`` percent; the counts of connections and descriptors may also move by
``COUNT_SLACK``, as pools open one more under a burst), and the lost work: accepted messages whose reply
is not ``completed`` (pass: none). Exits 1 on a failure.

    make soak MINUTES=30            # .venv/bin/python bench/soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import psutil
import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import load
from bench.stack import LOG_DIR, BenchStack
from core.queues import QUEUES
from tests.fixtures.processes import Child, python_argv
from tests.fixtures.stack import Stack
from workers.run import worker_argv

RESULTS = Path(__file__).resolve().parent / "results" / "soak.md"
COUNT_SLACK = 2
FIGURES = ("rss_mb", "pg", "redis", "fds")
JSON = {"Content-Type": "application/json"}


@dataclass
class Sample:
    minute: float
    figures: dict[str, dict[str, float]]  # kind → figure → value


@dataclass
class Traffic:
    accepted: list[str] = field(default_factory=list)  # reply ids
    refused: dict[int, int] = field(default_factory=dict)  # status (0: transport error) → count


class SoakStack(BenchStack):
    """BenchStack's database and fake LLM, with every process of the Procfile and billing on."""

    def __init__(self, redis_url: str) -> None:
        super().__init__(redis_url, llm_concurrency=50)
        self.processes: dict[str, Child] = {}

    def start(self) -> None:
        env = self.start_dependencies()
        env["CHATAI_SIGNUP_CREDIT_MICROS"] = str(10**12)  # billing settles every reply; enough for all
        self.stack = Stack(env, LOG_DIR)
        api_argv = python_argv(
            "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
            "--port", str(self.stack.port), "--no-access-log", "--log-level", "warning",
        )  # fmt: skip
        commands = {"api": api_argv}
        commands |= {queue: worker_argv(queue, ["--loglevel", "INFO"]) for queue in QUEUES}
        commands["telegram-poller"] = python_argv("-m", "workers.telegram_poller")
        commands["beat"] = python_argv(
            "-m", "celery", "-A", "workers.app", "beat", "-s", str(LOG_DIR / "soak-beat-schedule"),
            "--loglevel", "INFO",
        )  # fmt: skip
        for kind, argv in commands.items():
            child = Child(f"soak-{kind}", argv, {**env, "PGAPPNAME": f"soak-{kind}"}, LOG_DIR)
            self.processes[kind] = child
            self.stack.children.append(child)
        for queue in QUEUES:
            self.processes[queue].wait_for_log(" ready.", timeout=180)
        self.processes["beat"].wait_for_log("beat: Starting", timeout=60)
        self.api = self.processes["api"]
        import httpx

        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.stack.base_url}/health/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API is not ready:\n{self.api.log_text()[-3000:]}")
            time.sleep(0.2)

    def check_alive(self) -> None:
        for kind, child in self.processes.items():
            if child.proc.poll() is not None:
                raise RuntimeError(f"{kind} exited with {child.proc.returncode}:\n{child.log_text()[-3000:]}")

    # Measurements.

    def sample(self) -> dict[str, dict[str, float]]:
        trees = {kind: _tree(child.proc.pid) for kind, child in self.processes.items()}
        ports = {kind: _local_ports(tree) for kind, tree in trees.items()}
        pg = self._pg_connections()
        clients = _redis_client_ports(self.redis)
        figures = {}
        for kind, tree in trees.items():
            rss, fds = _memory_and_fds(tree)
            figures[kind] = {
                "rss_mb": rss / 2**20,
                "pg": float(pg.get(f"soak-{kind}", 0)),
                "redis": float(len(clients & ports[kind])),
                "fds": float(fds),
            }
        return figures

    def _pg_connections(self) -> dict[str, int]:
        with psycopg.connect(self._db_uri()) as conn:
            rows = conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
            ).fetchall()
        return {str(name): int(n) for name, n in rows}

    def reply_statuses(self, reply_ids: list[str]) -> dict[str, int]:
        with psycopg.connect(self._db_uri()) as conn:
            rows = conn.execute(
                "SELECT status::text, count(*) FROM messages WHERE id = ANY(%s::uuid[]) GROUP BY 1",
                (reply_ids,),
            ).fetchall()
        return {status: int(n) for status, n in rows}

    def charges(self, reply_ids: list[str]) -> tuple[int, int]:
        """(replies charged, replies charged more than once) among these."""
        with psycopg.connect(self._db_uri()) as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE n > 1) FROM ("
                " SELECT reference, count(*) AS n FROM transactions"
                " WHERE kind = 'charge' AND reference = ANY(%s) GROUP BY reference) AS c",
                (reply_ids,),
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _memory_and_fds(tree: list[psutil.Process]) -> tuple[int, int]:
    rss = fds = 0
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            rss += process.memory_info().rss
            fds += process.num_fds()
    return rss, fds


def _local_ports(tree: list[psutil.Process]) -> set[int]:
    ports: set[int] = set()
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            ports |= {c.laddr.port for c in process.net_connections(kind="tcp") if c.laddr}
    return ports


def _redis_client_ports(client: redis.Redis) -> set[int]:
    ports = set()
    for entry in client.client_list():
        addr = str(entry.get("addr", ""))
        if addr.rpartition(":")[2].isdigit():
            ports.add(int(addr.rpartition(":")[2]))
    return ports


# Traffic.


async def steady_chat(
    base_url: str, dialogs: list[load.Dialog], rate: float, until: float, traffic: Traffic
) -> None:
    """Post one turn every 1/rate s (open loop: a slow answer does not slow the sending)."""
    async with load.http_session(limit=0, timeout=30) as http:
        pending: set[asyncio.Task[None]] = set()
        start, i = time.monotonic(), 0
        while (scheduled := start + i / rate) < until:
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
            task = asyncio.create_task(_post(http, base_url, dialogs[i % len(dialogs)], i, traffic))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        await asyncio.gather(*pending)


async def _post(
    http: aiohttp.ClientSession, base_url: str, dialog: load.Dialog, i: int, traffic: Traffic
) -> None:
    token, dialog_id = dialog
    headers = {"Authorization": f"Bearer {token}", **JSON}
    body = orjson.dumps({"content": f"soak turn {i} [[tokens:24]]"})
    status = 0
    try:
        async with (
            asyncio.timeout(15),
            http.post(f"{base_url}/api/dialogs/{dialog_id}/messages", data=body, headers=headers) as r,
        ):
            status = r.status
            if status == 202:
                traffic.accepted.append((await r.json())["reply"]["id"])
                return
            await r.read()
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    traffic.refused[status] = traffic.refused.get(status, 0) + 1


# Report.


def print_sample(sample: Sample, accepted: int) -> None:
    print(f"\n-- minute {sample.minute:.1f}  (accepted so far: {accepted})", flush=True)
    print(f"   {'process':<16}{'RSS MB':>9}{'PG conns':>10}{'Redis':>7}{'FDs':>6}")
    for kind, f in sample.figures.items():
        print(
            f"   {kind:<16}{f['rss_mb']:>9.1f}{f['pg']:>10.0f}{f['redis']:>7.0f}{f['fds']:>6.0f}", flush=True
        )


def growth_rows(baseline: Sample, last: Sample, max_growth: float) -> tuple[list[str], bool]:
    rows = [
        "| process | RSS MB (warm → end) | growth | PG conns | Redis clients | FDs | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    passed = True
    for kind, end in last.figures.items():
        start = baseline.figures[kind]
        verdicts = []
        rss_growth = 100 * (end["rss_mb"] - start["rss_mb"]) / max(start["rss_mb"], 1e-9)
        if rss_growth >= max_growth:
            verdicts.append("RSS grew")
        for figure, label in (("pg", "PG"), ("redis", "Redis"), ("fds", "FDs")):
            limit = max(start[figure] * (1 + max_growth / 100), start[figure] + COUNT_SLACK)
            if end[figure] > limit:
                verdicts.append(f"{label} grew")
        passed = passed and not verdicts
        rows.append(
            f"| {kind} | {start['rss_mb']:.0f} → {end['rss_mb']:.0f} | {rss_growth:+.1f} % "
            f"| {start['pg']:.0f} → {end['pg']:.0f} | {start['redis']:.0f} → {end['redis']:.0f} "
            f"| {start['fds']:.0f} → {end['fds']:.0f} | {', '.join(verdicts) or 'pass'} |"
        )
    return rows, passed


async def soak(stack: SoakStack, args: argparse.Namespace) -> tuple[bool, list[str]]:
    """Whether the run passed, and its report."""
    base_url = stack.stack.base_url if stack.stack else ""
    async with load.http_session(limit=32) as http:
        owners = await load.create_owners(http, base_url, args.owners)
        dialogs = await load.create_dialogs(http, base_url, owners, args.dialogs)
    started = time.monotonic()
    until = started + args.minutes * 60
    traffic = Traffic()
    sender = asyncio.create_task(steady_chat(base_url, dialogs, args.rate, until, traffic))
    samples: list[Sample] = []
    next_sample = started + args.sample_seconds
    while time.monotonic() < until:
        await asyncio.sleep(max(0.0, min(next_sample, until) - time.monotonic()))
        if time.monotonic() >= next_sample:
            stack.check_alive()
            figures = await asyncio.to_thread(stack.sample)
            samples.append(Sample((time.monotonic() - started) / 60, figures))
            print_sample(samples[-1], len(traffic.accepted))
            next_sample += args.sample_seconds
    await sender
    # Drain: every accepted reply ends, or the deadline passes (those left are lost).
    deadline = time.monotonic() + args.drain_seconds
    statuses = stack.reply_statuses(traffic.accepted)
    while statuses.get("completed", 0) < len(traffic.accepted) and time.monotonic() < deadline:
        await asyncio.sleep(1)
        statuses = stack.reply_statuses(traffic.accepted)
    stack.check_alive()
    figures = await asyncio.to_thread(stack.sample)
    samples.append(Sample((time.monotonic() - started) / 60, figures))
    print_sample(samples[-1], len(traffic.accepted))

    warm = [s for s in samples if s.minute >= args.warmup_minutes - 1e-6]
    if len(warm) < 2:
        return False, [f"no samples after the {args.warmup_minutes} min warm-up: run longer"]
    rows, steady = growth_rows(warm[0], warm[-1], args.max_growth)
    completed = statuses.get("completed", 0)
    lost = len(traffic.accepted) - completed
    charged, doubled = stack.charges(traffic.accepted)
    refused = ", ".join(f"{k or 'transport error'}: {v}" for k, v in sorted(traffic.refused.items()))
    passed = steady and lost == 0 and doubled == 0
    report = [
        f"## Soak: {args.minutes:g} min at {args.rate:g} turns/s",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/soak.py', *sys.argv[1:]])}` on "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores. The API, one worker per "
        "queue, the Telegram poller and beat, billing on, the fake LLM (24 tokens a reply). Growth from "
        f"minute {warm[0].minute:.1f} (the end of the warm-up) to {warm[-1].minute:.1f}, after the drain; "
        f"pass: under {args.max_growth:g} % (connection and descriptor counts may also move by "
        f"{COUNT_SLACK}).",
        "",
        *rows,
        "",
        f"Accepted {len(traffic.accepted)}, completed {completed}, lost {lost} "
        f"(every end: {dict(statuses)}); refused {refused or 0}; replies charged {charged}, "
        f"charged twice {doubled}. "
        f"**{'PASS' if passed else 'FAIL'}**",
    ]
    print("\n" + "\n".join(report), flush=True)
    return passed, report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=5.0, help="chat turns a second")
    parser.add_argument("--warmup-minutes", type=float, default=None, help="default: 1, or 2 from 10 min on")
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--max-growth", type=float, default=5.0, help="percent")
    parser.add_argument("--owners", type=int, default=10)
    parser.add_argument("--dialogs", type=int, default=200)
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    parser.add_argument("--out", default=str(RESULTS), help="where to write the report ('' = nowhere)")
    parser.add_argument(
        "--redis-url", default=os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/10"),
        help="a Redis db of its own (flushed at start)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.warmup_minutes is None:
        args.warmup_minutes = 2.0 if args.minutes >= 10 else 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = SoakStack(args.redis_url)
    try:
        stack.start()
        passed, report = asyncio.run(soak(stack, args))
    finally:
        stack.stop()
    if args.out:
        Path(args.out).write_text("\n".join(report) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
