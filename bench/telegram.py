"""Telegram benchmark: many bots answered by the telegram worker pool, within Telegram's limits.

    .venv/bin/python bench/telegram.py [--quick] [--seconds 60]

Starts the bench stack (embedded Postgres ``.data/bench-postgres``, Redis db 11 flushed, the fake LLM at
zero latency, one API and one llm worker process), the fake Bot API, and ``--telegram-workers`` telegram
worker processes (one by default).
Connects ``--bots`` bots through ``POST /api/bots`` and delivers webhook calls open-loop:

1. baseline: only the quiet bots (``--quiet-rate`` updates/s each, over ``--chats`` chats);
2. loaded: the same quiet load plus ``--hot`` hot bots at ``--hot-rate`` updates/s each (more than the
   30 messages/s a bot may send).

Reports webhook ACK latency, replies delivered vs expected (after a bounded drain), 429s from the fake
(target 0), each hot bot's send rate while saturated against 30/s (target ≥ 0.95), the quiet bots' reply
latency (webhook POST → the fake receiving sendMessage) against the baseline (target within 10 %), and
CPU of the API per webhook call and of the telegram worker per reply sent.
Writes ``bench/results/telegram.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402

from bench import stack as bench_stack  # noqa: E402
from bench.report import Report, log_errors, verdict  # noqa: E402
from bench.stack import BenchStack  # noqa: E402
from bench.stats import ms, p50, p99, tree_cpu_seconds  # noqa: E402
from tests.fixtures.fake_telegram import FakeTelegram  # noqa: E402
from tests.fixtures.processes import Child  # noqa: E402
from tests.fixtures.telegram import SECRET_HEADER, ConnectedBot, connect_bot, text_update  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "telegram.md"
BOT_LIMIT = 30.0


@dataclass(frozen=True)
class Config:
    quick: bool = False
    seconds: float = 60.0
    bots: int = 20
    hot: int = 2
    chats: int = 50
    hot_rate: float = 60.0
    quiet_rate: float = 2.0
    drain_seconds: float = 60.0
    redis_url: str = "redis://127.0.0.1:6379/11"
    telegram_concurrency: int = 50
    telegram_workers: int = 1


@dataclass
class Sent:
    bot: ConnectedBot
    chat_id: int
    posted_at: float  # wall clock, to compare with the fake's record times
    ack: float


@dataclass
class Phase:
    name: str
    sent: dict[str, Sent] = field(default_factory=dict)  # marker word → the update
    errors: int = 0
    started: float = 0.0
    ended: float = 0.0


async def drive(
    session: aiohttp.ClientSession,
    base_url: str,
    phase: Phase,
    schedule: list[tuple[float, ConnectedBot, int]],
) -> None:
    """Deliver each update at its offset from now, without waiting for earlier answers (open loop).

    aiohttp, not httpx: httpx's pool spends CPU per queued request, which thousands in flight turn into
    the bottleneck of the client rather than of the system measured."""
    counter = itertools.count()
    start = time.monotonic()
    phase.started = time.time()

    async def one(bot: ConnectedBot, chat_id: int) -> None:
        marker = f"{phase.name}{next(counter)}"
        body = orjson.dumps(text_update(chat_id, marker))
        headers = {SECRET_HEADER: bot.secret, "content-type": "application/json"}
        posted, t0 = time.time(), time.perf_counter()
        try:
            async with session.post(base_url + bot.webhook_path, data=body, headers=headers) as r:
                await r.read()
                ok = r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            phase.sent[marker] = Sent(bot, chat_id, posted, time.perf_counter() - t0)
        else:
            phase.errors += 1

    tasks = []
    for offset, bot, chat_id in schedule:
        delay = start + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(bot, chat_id)))
    await asyncio.gather(*tasks)
    phase.ended = time.time()


def schedule_for(
    bots: list[ConnectedBot], rate: float, seconds: float, chats: int, chat_base: int
) -> list[tuple[float, ConnectedBot, int]]:
    plan = []
    for b, bot in enumerate(bots):
        n = int(rate * seconds)
        for i in range(n):
            # Evenly spaced per bot, bots staggered, chats in turn.
            plan.append(((i + b / len(bots)) / rate, bot, chat_base + b * 1000 + i % chats))
    return sorted(plan, key=lambda item: item[0])


def replies(fake: FakeTelegram, phase: Phase) -> dict[str, float]:
    """Marker → when the fake accepted its reply (wall clock)."""
    return {marker: times[0] for marker, times in sends_by_marker(fake, phase).items()}


def sends_by_marker(fake: FakeTelegram, phase: Phase) -> dict[str, list[float]]:
    """Marker → every time the fake accepted a reply to it (more than one: a reply sent twice)."""
    out: dict[str, list[float]] = {}
    for call in fake.calls("sendMessage"):
        if call.get("status") != 200:
            continue
        words = call["params"]["text"].split()
        if len(words) > 1 and words[1] in phase.sent:
            out.setdefault(words[1], []).append(call["at"])
    return out


def wait_delivered(fake: FakeTelegram, phase: Phase, deadline: float) -> dict[str, float]:
    got = replies(fake, phase)
    while len(got) < len(phase.sent) and time.monotonic() < deadline:
        time.sleep(1.0)
        got = replies(fake, phase)
    return got


async def run(
    cfg: Config, stack: BenchStack, fake: FakeTelegram, workers: list[Child], report: Report
) -> None:
    assert stack.stack is not None and stack.api is not None
    async with httpx.AsyncClient(
        base_url=stack.stack.base_url, timeout=30, limits=httpx.Limits(max_connections=200)
    ) as http:
        # One customer per bot, as in production: a message holds its owner's balance row.
        quiet = [await connect_bot(http, fake) for _ in range(cfg.bots - cfg.hot)]
        hot = [await connect_bot(http, fake) for _ in range(cfg.hot)]
        quiet_plan = schedule_for(quiet, cfg.quiet_rate, cfg.seconds, cfg.chats, 10_000_000)

        phases = []
        for name, plan in (
            ("base", quiet_plan),
            (
                "load",
                sorted(
                    quiet_plan + schedule_for(hot, cfg.hot_rate, cfg.seconds, cfg.chats, 20_000_000),
                    key=lambda x: x[0],
                ),
            ),
        ):
            phase = Phase(name)
            cpu_before = (tree_cpu_seconds(stack.api.proc.pid), workers_cpu(workers))
            print(f"{name}: {len(plan)} updates over {cfg.seconds:g} s …", file=sys.stderr, flush=True)
            connector = aiohttp.TCPConnector(limit=200)
            timeout = aiohttp.ClientTimeout(total=60)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                await drive(session, stack.stack.base_url, phase, plan)
            delivered = await asyncio.to_thread(
                wait_delivered, fake, phase, time.monotonic() + cfg.drain_seconds
            )
            cpu = (
                tree_cpu_seconds(stack.api.proc.pid) - cpu_before[0],
                workers_cpu(workers) - cpu_before[1],
            )
            phases.append((phase, delivered, cpu))

    counters = fake.counters()
    (base, base_got, _), (load, load_got, _) = phases
    acks = [s.ack for s in load.sent.values()]
    report.add("webhook ACK (loaded)", p50=ms(p50(acks)), p99=ms(p99(acks)), target="fast 200")
    report.add(
        "replies delivered / expected (loaded, after drain)",
        value=f"{len(load_got)} / {len(load.sent)} ({load.errors} POST errors)",
        baseline=f"{len(base_got)} / {len(base.sent)}",
        target=verdict(len(base_got) == len(base.sent)),
    )
    twice = sum(len(times) - 1 for phase in (base, load) for times in sends_by_marker(fake, phase).values())
    report.add("replies sent more than once", value=str(twice), target=f"0 {verdict(twice == 0)}")
    organic_429 = counters.get("rate_limited", 0)
    report.add("429 answers from the fake", value=str(organic_429), target=f"0 {verdict(organic_429 == 0)}")
    window = (load.started + 5, load.started + cfg.seconds)
    for bot in hot:
        sends = [
            at
            for marker, at in load_got.items()
            if load.sent[marker].bot is bot and window[0] <= at <= window[1]
        ]
        rate = len(sends) / (window[1] - window[0])
        share = rate / BOT_LIMIT
        report.add(
            f"hot bot {bot.telegram_id} send rate while saturated",
            value=f"{rate:.1f}/s",
            baseline="30/s",
            target=f"{share:.2f} ≥ 0.95 {verdict(share >= 0.95)}",
        )

    def quiet_latency(phase: Phase, got: dict[str, float]) -> list[float]:
        return [got[m] - s.posted_at for m, s in phase.sent.items() if m in got and s.bot in quiet]

    base_lat, load_lat = quiet_latency(base, base_got), quiet_latency(load, load_got)
    for name, pick in (("p50", p50), ("p99", p99)):
        ratio = pick(load_lat) / pick(base_lat) if base_lat and load_lat else float("nan")
        report.add(
            f"quiet bots' reply latency {name}, with vs without hot bots",
            value=ms(pick(load_lat)),
            baseline=ms(pick(base_lat)),
            target=f"{ratio:.2f} ≤ 1.10 {verdict(ratio <= 1.10)}",
        )
    for label, (phase, got, cpu) in (("baseline", phases[0]), ("loaded", phases[1])):
        report.add(f"API CPU per webhook call ({label})", value=ms(cpu[0] / max(1, len(phase.sent))))
        report.add(
            f"telegram worker CPU per reply sent ({label}; handling, sending and waiting included)",
            value=ms(cpu[1] / max(1, len(got))),
        )


def workers_cpu(workers: list[Child]) -> float:
    return sum(tree_cpu_seconds(worker.proc.pid) for worker in workers)


def render(cfg: Config, report: Report, elapsed: float) -> str:
    cpu = platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    defaults = Config(quick=True, seconds=15.0, drain_seconds=45.0) if cfg.quick else Config()
    mode = ("--quick" if cfg.quick else "full") if cfg == defaults else "scaled"
    lines = [
        f"## telegram ({mode}) — {when}",
        "",
        f"Machine: nproc={os.cpu_count()}, {cpu}, Python {platform.python_version()}. "
        f"Run took {elapsed:.0f} s. Command: `.venv/bin/python bench/telegram.py {' '.join(sys.argv[1:])}`.",
        "",
        "| metric | median (p50) | p99 | value | baseline | ratio/target |",
        "|---|---|---|---|---|---|",
        *(f"| {r.metric} | {r.p50} | {r.p99} | {r.value} | {r.baseline} | {r.target} |" for r in report.rows),
        "",
        f"Load: {cfg.bots} bots (one owner each) x {cfg.chats} chats for {cfg.seconds:g} s; {cfg.hot} hot "
        f"bots at {cfg.hot_rate:g} updates/s each, the others at {cfg.quiet_rate:g}/s; baseline = the quiet "
        f"bots alone. One API, one llm worker, {cfg.telegram_workers} telegram worker process(es) "
        f"(threads -c {cfg.telegram_concurrency} each); "
        f"fake LLM at zero latency (5 tokens); drain after each phase up to {cfg.drain_seconds:g} s. "
        "Latency = webhook POST → the fake Bot API receiving the sendMessage. CPU = user+system of each "
        "process tree over the phase (psutil).",
    ]
    lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 s phases")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--drain-seconds", type=float, default=None)
    parser.add_argument("--bots", type=int, default=None)
    parser.add_argument("--hot", type=int, default=None, help="how many of the bots are hot")
    parser.add_argument("--chats", type=int, default=None, help="chats per bot")
    parser.add_argument("--hot-rate", type=float, default=None, help="updates/s of each hot bot")
    parser.add_argument("--quiet-rate", type=float, default=None, help="updates/s of each quiet bot")
    parser.add_argument("--telegram-workers", type=int, default=None, help="telegram worker processes")
    parser.add_argument("--telegram-concurrency", type=int, default=None, help="threads per telegram worker")
    args = parser.parse_args(argv)
    cfg = Config(quick=args.quick, seconds=15.0, drain_seconds=45.0) if args.quick else Config()
    names = (
        "seconds",
        "drain_seconds",
        "bots",
        "hot",
        "chats",
        "hot_rate",
        "quiet_rate",
        "telegram_workers",
        "telegram_concurrency",
    )
    changes = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    return Config(**{**cfg.__dict__, **changes})


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    # SIGTERM unwinds through the finally below, so the processes this run started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # A Postgres data dir and database of its own, so a chat_pipeline run at the same time is unaffected.
    bench_stack.PGDATA = ROOT / ".data" / "bench-telegram-postgres"
    bench_stack.DB_NAME = "chatai_bench_telegram"
    bench_stack.LOG_DIR = ROOT / ".data" / "bench-telegram-logs"
    started = time.monotonic()
    report = Report()
    stack = BenchStack(cfg.redis_url, llm_concurrency=200)
    fake: FakeTelegram | None = None
    try:
        print("starting Postgres, fake LLM, fake Bot API, API and workers …", file=sys.stderr, flush=True)
        bench_stack.LOG_DIR.mkdir(parents=True, exist_ok=True)
        fake = FakeTelegram(bench_stack.LOG_DIR, dict(os.environ))
        stack.extra_env.update(
            {
                **fake.env,
                "CHATAI_TELEGRAM_WEBHOOKS": "true",
                "CHATAI_PUBLIC_BASE_URL": "https://bench.example",
                "CHATAI_TELEGRAM_CONCURRENCY": str(cfg.telegram_concurrency),
                "CHATAI_METRICS_PORT": "0",  # several workers of one queue on one machine; not measured
            }
        )
        stack.start()
        assert stack.fake_llm is not None and stack.stack is not None
        stack.fake_llm.configure(tokens=5)
        workers = [
            stack.stack.start_worker("telegram", "-n", f"telegram-{n}@%h")
            for n in range(cfg.telegram_workers)
        ]
        asyncio.run(run(cfg, stack, fake, workers, report))
        report.notes += log_errors(stack)
    finally:
        print("stopping …", file=sys.stderr, flush=True)
        if fake is not None:
            fake.stop()
        stack.stop()
    table = render(cfg, report, time.monotonic() - started)
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
