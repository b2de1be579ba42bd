"""Chat pipeline benchmark: the whole system as real processes, with baselines measured in the same run.

    .venv/bin/python bench/chat_pipeline.py [--quick]

Starts an embedded Postgres (``.data/bench-postgres``, database ``chatai_bench``), uses Redis db 9 (flushed),
the fake OpenAI-compatible LLM, one uvicorn API process and ONE llm worker process, then measures:

1. baselines: time to first token straight from the fake LLM through the ``openai`` SDK (50 streams), and
   the round-trip rate of a no-op Celery task on the same broker (one threads-pool worker process);
2. overhead: time to the first ``reply.delta`` on the WebSocket (from just before the POST) minus that
   baseline, at 50 concurrent dialogs;
3. accept latency: ``POST /api/dialogs/{id}/messages`` → 202 at an open-loop offered rate;
4. throughput with a slow LLM (50 tokens ~40 ms apart) at a few hundred dialogs in flight, and the CPU
   per reply of each process (from its own resource usage);
5. throughput at zero LLM latency, against the no-op Celery rate.

Prints a markdown table and writes it to ``bench/results/chat_pipeline.md``. Everything talks to 127.0.0.1.
Dialogs belong to ``--owners`` users (POST places a billing hold on its owner's balance row); the accept
phase runs once with them spread over the owners and once with one owner.

Profiling (a separate run: sampling costs CPU): ``--py-spy worker:slow:/tmp/worker.txt`` (also ``api``,
and the phases ``overhead``, ``accept``, ``zero``) records py-spy's raw collapsed stacks during that phase's
window; ``bench/profile_summary.py /tmp/worker.txt`` turns them into tables. ``--phases slow`` runs one phase;
``--env NAME=VALUE`` sets extra settings of the API and worker (what-if runs). ``--history N`` gives every
dialog of the closed loops N finished messages first (a long conversation; the history window is
``CHATAI_LLM_HISTORY_MESSAGES``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import multiprocessing as mp
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from bench import load  # noqa: E402
from bench.report import Report, finish_py_spy, log_errors, start_py_spy, verdict  # noqa: E402
from bench.stack import API_KEY, LOG_DIR, BenchStack  # noqa: E402
from bench.stats import ms, own_cpu_seconds, p50, p99, tree_cpu_seconds  # noqa: E402
from core.settings import Settings  # noqa: E402
from services.providers.tokens import estimate_tokens  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "chat_pipeline.md"
TOKENS = 50


@dataclass(frozen=True)
class Config:
    quick: bool
    redis_url: str = "redis://127.0.0.1:6379/9"
    llm_concurrency: int = 320  # threads of the one llm worker process
    log_level: str = "INFO"
    deflate: bool = True  # WebSocket permessage-deflate, as browsers and the ``websockets`` client offer
    client_procs: int = 1
    owners: int = 10  # users owning the dialogs (each POST holds its owner's balance row)
    api_processes: int = 1  # uvicorn --workers
    # 1. baselines
    ttft_streams: int = 50
    ttft_seconds: float = 10.0
    noop_tasks: int = 3000
    # 2. overhead
    overhead_dialogs: int = 50
    overhead_seconds: float = 15.0
    overhead_token_delay_ms: float = 40.0
    # 3. accept latency
    accept_rate: float = 200.0
    accept_seconds: float = 10.0
    accept_dialogs: int = 200
    # 4. slow LLM
    slow_dialogs: int = 280
    slow_token_delay_ms: float = 40.0
    slow_warmup: float = 6.0
    slow_window: float = 20.0
    # 5. zero latency
    zero_dialogs: int = 100
    zero_warmup: float = 3.0
    zero_window: float = 10.0
    phases: tuple[str, ...] = ("noop", "ttft", "overhead", "accept", "slow", "zero")
    py_spy: tuple[tuple[str, str, str], ...] = ()  # (api|worker, phase, output file)
    py_spy_args: str = "--rate 100 --gil --nonblocking"
    extra_env: tuple[tuple[str, str], ...] = ()
    history: int = 0  # finished messages each dialog already holds before its first measured turn

    @classmethod
    def quick_mode(cls) -> Config:
        return cls(
            quick=True, ttft_seconds=4.0, noop_tasks=1000, overhead_seconds=6.0, accept_seconds=3.0,
            slow_warmup=5.0, slow_window=8.0, zero_warmup=2.0, zero_window=4.0,
        )  # fmt: skip

    @property
    def slow_reply_seconds(self) -> float:
        return (TOKENS - 1) * self.slow_token_delay_ms / 1000


# 1b. The no-op Celery baseline (synchronous: runs before the event loop starts).


def measure_noop(stack: BenchStack, cfg: Config, report: Report) -> tuple[float, float]:
    """The no-op round-trip rate (tasks/s) and the worker's CPU seconds per task."""
    os.environ["BENCH_REDIS_URL"] = cfg.redis_url
    from bench import noop_app

    worker = stack.start_noop_worker(cfg.llm_concurrency)
    try:
        r = stack.redis

        def done() -> int:
            return int(r.get(noop_app.COUNTER) or 0)

        def batch(n: int) -> tuple[float, float, float, float]:
            base = done()
            cpu0, own0, t0 = tree_cpu_seconds(worker.proc.pid), own_cpu_seconds(), time.monotonic()
            for _ in range(n):
                noop_app.app.send_task(noop_app.TASK, queue=noop_app.QUEUE)
            t_sent, own1 = time.monotonic(), own_cpu_seconds()
            deadline = t0 + 120
            while done() < base + n:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no-op tasks: {done() - base}/{n} done after 120 s")
                time.sleep(0.002)
            t1 = time.monotonic()
            cpu1 = tree_cpu_seconds(worker.proc.pid)
            return n / (t1 - t0), (cpu1 - cpu0) / n, n / (t_sent - t0), (own1 - own0) / n

        batch(200)  # warm up
        rate, worker_cpu, send_rate, send_cpu = batch(cfg.noop_tasks)
    finally:
        stack.stop_noop_worker()
    report.add(
        f"Baseline: no-op Celery task round trip ({cfg.noop_tasks} tasks, 1 worker process, "
        f"threads pool -c {cfg.llm_concurrency}, Redis broker)",
        value=f"{rate:,.0f} tasks/s",
        baseline=f"sender {send_rate:,.0f}/s at {send_cpu * 1000:.2f} ms CPU/task",
        target=f"worker CPU {worker_cpu * 1000:.2f} ms/task",
    )
    return rate, worker_cpu


# Helpers for the asynchronous phases.


class FakeLLMControl:
    def __init__(self, stack: BenchStack) -> None:
        assert stack.fake_llm is not None
        self.url = stack.fake_llm.control_url

    async def set(self, token_delay_ms: float) -> None:
        settings = {"tokens": TOKENS, "token_delay_ms": token_delay_ms, "first_token_delay_ms": 0.0}
        async with httpx.AsyncClient(timeout=5) as http:
            (await http.post(self.url, json=settings)).raise_for_status()


@dataclass
class LoopOutcome:
    turns: list[load.Turn]
    errors: Counter[str]
    w0: float
    w1: float
    server_cpu: dict[str, float]
    client_cpu: float

    def in_window(self) -> list[load.Turn]:
        """Turns whose POST started inside the measured window."""
        return [t for t in self.turns if self.w0 <= t[0] < self.w1]

    def completed_in_window(self) -> list[load.Turn]:
        return [t for t in self.turns if self.w0 <= t[3] < self.w1 and t[4] == "reply.completed"]


async def closed_loop(stack: BenchStack, cfg: Config, params: load.PartParams) -> LoopOutcome:
    """Run a closed loop over ``params.dialogs`` split across ``cfg.client_procs`` client processes,
    and measure every server process's CPU over the window."""
    procs = max(1, min(cfg.client_procs, len(params.dialogs)))
    shares = [params.dialogs[i::procs] for i in range(procs)]
    server: dict[str, float] = {}
    window_tasks: list[asyncio.Task[None]] = []

    async def server_window(w0: float, w1: float) -> None:
        await asyncio.sleep(max(0.0, w0 - load.now()))
        s0 = stack.cpu_snapshot()
        await asyncio.sleep(max(0.0, w1 - load.now()))
        s1 = stack.cpu_snapshot()
        server.update({k: s1[k] - s0[k] for k in s0 if k in s1})

    barrier = results = None
    children: list[mp.process.BaseProcess] = []
    if procs > 1:
        ctx = mp.get_context("spawn")
        barrier, results = ctx.Barrier(procs), ctx.Queue()
        for i, share in enumerate(shares[1:], start=1):
            child = ctx.Process(
                target=load.run_part_process,
                args=(replace(params, dialogs=share, seed=i), barrier, results, 120.0),
                daemon=True,
            )
            child.start()
            children.append(child)

    async def ready() -> float:
        if barrier is not None:
            await asyncio.to_thread(barrier.wait, 120.0)
        start = load.now() + 0.2
        w0 = start + params.warmup_s
        window_tasks.append(asyncio.create_task(server_window(w0, w0 + params.window_s)))
        return start

    try:
        own = await load.closed_loop_part(replace(params, dialogs=shares[0]), ready)
        turns, errors, client_cpu = list(own.turns), Counter(own.errors), own.client_cpu_window_s
        for _ in children:
            assert results is not None
            status, child_turns, child_errors, cpu = await asyncio.to_thread(results.get, True, 120)
            if status != "ok":
                raise RuntimeError(f"a client process failed: {child_turns}")
            turns += child_turns
            errors.update(child_errors)
            client_cpu += cpu
        await asyncio.gather(*window_tasks)
    finally:
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join(5)
    return LoopOutcome(turns, errors, own.w0, own.w1, server, client_cpu)


async def drain(stack: BenchStack, report: Report, phase: str, timeout: float = 60) -> None:
    drained, stuck = await asyncio.to_thread(stack.wait_drained, timeout)
    if not drained:
        report.notes.append(
            f"{phase}: {stuck} replies still unfinished after {timeout:.0f} s; llm queue purged"
        )
    elif stuck:
        report.notes.append(
            f"after {phase}: {stuck} replies stuck queued/generating with the llm queue empty "
            "(their task ended without a terminal state; only the reaper under beat would end them)"
        )


def cpu_rows(
    report: Report, label: str, out: LoopOutcome, replies: int, window: float, noop_cpu: str
) -> None:
    if replies == 0:
        return
    per = {k: v / replies for k, v in out.server_cpu.items()}
    util = {k: v / window * 100 for k, v in out.server_cpu.items()}
    worker_ms = per.get("worker", math.nan) * 1000
    report.add(
        f"Worker CPU per reply, {label}",
        value=f"{worker_ms:.2f} ms ({util.get('worker', math.nan):.0f}% of a core)",
        baseline=noop_cpu,
        target=f"≤ 6 ms: {verdict(worker_ms <= 6)}",
    )
    report.add(
        f"API CPU per reply, {label}",
        value=f"{per.get('api', math.nan) * 1000:.2f} ms ({util.get('api', math.nan):.0f}% of a core)",
    )
    others = ", ".join(
        f"{name} {per[name] * 1000:.2f} ms ({util[name]:.0f}%)"
        for name in ("postgres", "redis", "fake_llm")
        if name in per
    )
    client = out.client_cpu / replies * 1000
    ours = sum(v for k, v in out.server_cpu.items() if k != "machine") + out.client_cpu
    foreign = out.server_cpu.get("machine", math.nan) - ours
    report.add(
        f"Other CPU per reply, {label}",
        value=f"{others}, bench client {client:.2f} ms ({out.client_cpu / window * 100:.0f}%)",
        baseline=f"other processes on the machine: {max(0.0, foreign) / window * 100:.0f}% of a core",
    )


# The phases on the event loop.


async def accept_phase(
    stack: BenchStack, cfg: Config, report: Report, dialogs: list[load.Dialog], who: str
) -> None:
    """The API alone: the worker stops taking tasks (on a small machine it would take the CPU the API
    is measured with), and the accepted tasks are dropped afterwards."""
    assert stack.stack is not None
    stack.check_alive()
    await asyncio.to_thread(stack.pause_llm_consumer, True)
    progress(f"  accept ({who}): llm consumer paused")
    spies = start_py_spy(cfg.py_spy, cfg.py_spy_args, stack, "accept", 0.5, cfg.accept_seconds)
    cpu0, t0 = stack.cpu_snapshot(), load.now()
    try:
        async with load.http_session(limit=0) as open_http:
            sent = await load.open_loop_posts(
                open_http, stack.stack.base_url, dialogs, cfg.accept_rate, cfg.accept_seconds
            )
        cpu1, elapsed = stack.cpu_snapshot(), load.now() - t0
        progress(f"  accept ({who}): {len(sent)} requests done")
    finally:
        finish_py_spy(spies, report)
        await asyncio.to_thread(stack.pause_llm_consumer, False)
        await asyncio.to_thread(stack.discard_queued_replies)
    ok = [s for s in sent if s[3] == 202]
    latency = [end - scheduled for scheduled, _, end, _ in ok]
    lag = [t_sent - scheduled for scheduled, t_sent, _, _ in sent]
    span = max(s[2] for s in sent) - min(s[0] for s in sent) if sent else math.nan
    bad = Counter(str(s[3]) for s in sent if s[3] != 202)
    used = {k: cpu1[k] - cpu0[k] for k in cpu0 if k in cpu1}
    per_request = {k: v / max(1, len(sent)) * 1000 for k, v in used.items()}
    foreign = used.get("machine", math.nan) - sum(v for k, v in used.items() if k != "machine")
    report.add(
        f"Accept latency POST /api/dialogs/{{id}}/messages → 202, open loop {cfg.accept_seconds:g} s, "
        f"{len(dialogs)} dialogs of {who} (llm worker paused)",
        p50=ms(p50(latency)), p99=ms(p99(latency)),
        value=f"achieved {len(ok) / span:,.0f} req/s ({len(ok)}/{len(sent)} ok)",
        baseline=f"offered {cfg.accept_rate:g} req/s",
        target=(f"non-202: {dict(bad)}; " if bad else "")
        + f"API CPU {per_request.get('api', math.nan):.2f} ms/req "
        f"({used.get('api', 0) / elapsed * 100:.0f}%), "
        f"Postgres {per_request.get('postgres', math.nan):.2f} ms/req; other processes on the machine "
        f"{max(0.0, foreign) / elapsed * 100:.0f}%; client send lag p99 {ms(p99(lag))}",
    )  # fmt: skip
    await drain(stack, report, "accept")
    progress(f"  accept ({who}): drained")


async def run_phases(stack: BenchStack, cfg: Config, report: Report, noop_rate: float, noop_cpu: str) -> None:
    assert stack.stack is not None and stack.fake_llm is not None
    base_url, ws_url = stack.stack.base_url, stack.stack.ws_url
    llm = FakeLLMControl(stack)
    async with load.http_session(limit=64) as http:
        owners = await load.create_owners(
            http, base_url, cfg.owners, system_prompt="You are a benchmark assistant."
        )

        def part(dialogs: list[load.Dialog], warmup: float, window: float, stagger: float) -> load.PartParams:
            return load.PartParams(
                base_url, ws_url, dialogs, warmup_s=warmup, window_s=window, stagger_s=stagger,
                deflate=cfg.deflate,
            )  # fmt: skip

        progress("owners created")
        # 1a. LLM time to first token, straight through the SDK.
        ttft: list[float] = []
        if "ttft" in cfg.phases or "overhead" in cfg.phases:
            await llm.set(cfg.overhead_token_delay_ms)
            ttft, errors = await load.llm_ttft_baseline(
                stack.fake_llm.base_url, API_KEY, cfg.ttft_streams, 1.0, cfg.ttft_seconds
            )
            report.add(
                f"Baseline: LLM time to first token, openai SDK direct ({cfg.ttft_streams} streams, "
                f"{TOKENS} tokens x {cfg.overhead_token_delay_ms:g} ms)",
                p50=ms(p50(ttft)), p99=ms(p99(ttft)), value=f"n={len(ttft)}",
                target=f"errors: {sum(errors.values())}" if errors else "—",
            )  # fmt: skip

        progress("LLM TTFT baseline")
        # 2. Overhead of the pipeline on the time to first token.
        if "overhead" in cfg.phases:
            stack.check_alive()
            dialogs = await dialogs_with_history(http, stack, cfg, owners, cfg.overhead_dialogs)
            spies = start_py_spy(cfg.py_spy, cfg.py_spy_args, stack, "overhead", 1.5, cfg.overhead_seconds)
            out = await closed_loop(stack, cfg, part(dialogs, 1.0, cfg.overhead_seconds, 1.0))
            finish_py_spy(spies, report)
            turns = [t for t in out.in_window() if t[4] == "reply.completed"]
            first = [t[2] - t[0] for t in turns if not math.isnan(t[2])]
            report.add(
                f"Time to first reply.delta on the WebSocket, from before the POST "
                f"({cfg.overhead_dialogs} dialogs, closed loop)",
                p50=ms(p50(first)), p99=ms(p99(first)), value=f"n={len(first)}",
                baseline=f"LLM TTFT {ms(p50(ttft))} / {ms(p99(ttft))}",
                target=_errors(out.errors),
            )  # fmt: skip
            over50, over99 = p50(first) - p50(ttft), p99(first) - p99(ttft)
            report.add(
                "**Overhead** = pipeline - direct time to first token (p50 - p50, p99 - p99)",
                p50=ms(over50), p99=ms(over99),
                target=f"p50 ≤ 10 ms: {verdict(over50 <= 0.010)}; p99 ≤ 50 ms: {verdict(over99 <= 0.050)}",
            )  # fmt: skip
            breakdown(report, f"{cfg.overhead_dialogs} dialogs", turns)
            load_note(report, f"overhead ({cfg.overhead_dialogs} dialogs)", out, cfg.overhead_seconds)
            await drain(stack, report, "overhead")

        progress("overhead")
        # 3. Accept latency at an offered rate, open loop: owners' dialogs spread, then one owner's.
        if "accept" in cfg.phases:
            dialogs = await load.create_dialogs(http, base_url, owners, cfg.accept_dialogs)
            progress("  accept: dialogs created")
            await accept_phase(stack, cfg, report, dialogs, f"{len(owners)} owners")
            if len(owners) > 1:
                dialogs = await load.create_dialogs(http, base_url, owners[:1], cfg.accept_dialogs)
                await accept_phase(stack, cfg, report, dialogs, "1 owner")

        progress("accept latency")
        # 4. Throughput with a slow LLM.
        if "slow" in cfg.phases:
            stack.check_alive()
            await llm.set(cfg.slow_token_delay_ms)
            dialogs = await dialogs_with_history(http, stack, cfg, owners, cfg.slow_dialogs)
            spies = start_py_spy(
                cfg.py_spy, cfg.py_spy_args, stack, "slow", cfg.slow_warmup + 1.0, cfg.slow_window
            )
            out = await closed_loop(
                stack, cfg, part(dialogs, cfg.slow_warmup, cfg.slow_window, cfg.slow_reply_seconds)
            )
            finish_py_spy(spies, report)
            done = out.completed_in_window()
            rate = len(done) / cfg.slow_window
            ceiling = cfg.slow_dialogs / cfg.slow_reply_seconds
            started = out.in_window()
            label = f"slow LLM, {cfg.slow_dialogs} in flight"
            report.add(
                f"**Replies/s, slow LLM** ({cfg.slow_dialogs} dialogs in flight, closed loop, "
                f"{TOKENS} tokens x {cfg.slow_token_delay_ms:g} ms)",
                value=f"{rate:,.1f} replies/s",
                baseline=f"ceiling {ceiling:,.0f}/s (in flight / {cfg.slow_reply_seconds:.2f} s)",
                target=f"≥ 90/s: {verdict(rate >= 90)}; " + _errors(out.errors),
            )  # fmt: skip
            durations = [t[3] - t[0] for t in started if t[4] == "reply.completed"]
            first = [t[2] - t[0] for t in started if not math.isnan(t[2])]
            report.add(
                f"Reply duration POST → reply.completed, {label}",
                p50=ms(p50(durations)), p99=ms(p99(durations)),
                baseline=f"LLM stream {cfg.slow_reply_seconds * 1000:.0f} ms",
            )  # fmt: skip
            report.add(
                f"Time to first reply.delta, {label}",
                p50=ms(p50(first)), p99=ms(p99(first)),
                baseline=f"LLM TTFT {ms(p50(ttft))} / {ms(p99(ttft))}" if ttft else "—",
            )  # fmt: skip
            breakdown(report, label, [t for t in started if t[4] == "reply.completed"])
            cpu_rows(report, label, out, len(done), cfg.slow_window, noop_cpu)
            load_note(report, label, out, cfg.slow_window)
            await drain(stack, report, "slow")

        progress("slow LLM throughput")
        # 5. Throughput at zero LLM latency.
        if "zero" in cfg.phases:
            stack.check_alive()
            await llm.set(0.0)
            dialogs = await dialogs_with_history(http, stack, cfg, owners, cfg.zero_dialogs)
            spies = start_py_spy(
                cfg.py_spy, cfg.py_spy_args, stack, "zero", cfg.zero_warmup + 1.0, cfg.zero_window
            )
            out = await closed_loop(stack, cfg, part(dialogs, cfg.zero_warmup, cfg.zero_window, 0.5))
            finish_py_spy(spies, report)
            done = out.completed_in_window()
            rate = len(done) / cfg.zero_window
            durations = [t[3] - t[0] for t in out.in_window() if t[4] == "reply.completed"]
            label = f"zero LLM latency, {cfg.zero_dialogs} in flight"
            report.add(
                f"**Replies/s, zero LLM latency** ({cfg.zero_dialogs} dialogs in flight, closed loop; "
                "p50/p99: POST → reply.completed)",
                p50=ms(p50(durations)), p99=ms(p99(durations)),
                value=f"{rate:,.1f} replies/s",
                baseline=f"no-op Celery {noop_rate:,.0f} tasks/s" if noop_rate else "—",
                target=(f"ratio {rate / noop_rate:.3f}; " if noop_rate else "") + _errors(out.errors),
            )  # fmt: skip
            cpu_rows(report, label, out, len(done), cfg.zero_window, noop_cpu)
            load_note(report, label, out, cfg.zero_window)
            await drain(stack, report, "zero")


def load_note(report: Report, label: str, out: LoopOutcome, window: float) -> None:
    """How busy each process (and everything else on the machine) was during a closed loop's window."""
    used = dict(out.server_cpu)
    machine = used.pop("machine", math.nan)
    ours = sum(used.values()) + out.client_cpu
    parts = [f"{k} {v / window * 100:.0f}%" for k, v in used.items()]
    parts.append(f"bench client {out.client_cpu / window * 100:.0f}%")
    parts.append(f"other processes {max(0.0, machine - ours) / window * 100:.0f}%")
    report.notes.append(f"CPU during the {label} window (% of one core): " + ", ".join(parts))


def breakdown(report: Report, label: str, turns: list[load.Turn]) -> None:
    """Where the time to first delta goes: API accept, queue + claim, then provider + delivery."""
    parts = [
        ("POST → 202", [t[1] - t[0] for t in turns]),
        ("202 → reply.started", [t[5] - t[1] for t in turns if not math.isnan(t[5])]),
        ("reply.started → first delta", [t[2] - t[5] for t in turns if not math.isnan(t[2] + t[5])]),
    ]
    report.add(
        f"Breakdown ({label}): " + " / ".join(name for name, _ in parts),
        p50=" / ".join(ms(p50(v)) for _, v in parts),
        p99=" / ".join(ms(p99(v)) for _, v in parts),
    )


_T0 = time.monotonic()


def progress(done: str) -> None:
    print(f"  {time.monotonic() - _T0:5.1f} s: {done}", file=sys.stderr, flush=True)


def _errors(errors: Counter[str]) -> str:
    return f"client errors: {dict(errors)}" if errors else "no errors"


# The table.


def render(cfg: Config, report: Report, elapsed: float, statuses: dict[str, int]) -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    mode = "--quick" if cfg.quick else "full"
    lines = [
        f"## chat_pipeline ({mode}) — {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Machine: nproc={os.cpu_count()}, {cpu}, Python {platform.python_version()}. "
        f"Run took {elapsed:.0f} s.",
        "",
        "| metric | median (p50) | p99 | value | baseline | ratio/target |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.metric} | {r.p50} | {r.p99} | {r.value} | {r.baseline} | {r.target} |" for r in report.rows
    ]
    lines += [
        "",
        f"Settings: {cfg.api_processes} uvicorn API process(es); one llm worker process "
        "(`workers.run.worker_argv`, threads pool "
        f"-c {cfg.llm_concurrency}), `CHATAI_LLM_PROVIDER=openai` against the fake LLM (separate process), "
        f"`CHATAI_LOG_LEVEL={cfg.log_level}`, delta coalescing at the default "
        f"{Settings().delta_coalesce_ms:g} ms; embedded Postgres "
        f"(`.data/bench-postgres`); Redis `{cfg.redis_url}` (flushed at start); WebSocket "
        f"permessage-deflate {'on' if cfg.deflate else 'off'}; {cfg.client_procs} client process(es) "
        f"(aiohttp on uvloop), one WebSocket per dialog; dialogs spread over {cfg.owners} owners (each with "
        "a huge signup credit: holds are placed on POST, and no billing worker settles them). Replies: "
        f"{TOKENS} tokens. Baseline TTFT and overhead: {cfg.overhead_token_delay_ms:g} ms/token, "
        f"{cfg.ttft_seconds:g} s / {cfg.overhead_seconds:g} s. Accept: {cfg.accept_rate:g} req/s offered for "
        f"{cfg.accept_seconds:g} s over {cfg.accept_dialogs} dialogs. Slow LLM: "
        f"{cfg.slow_token_delay_ms:g} ms/token, warm-up {cfg.slow_warmup:g} s, window {cfg.slow_window:g} s. "
        f"Zero latency: warm-up {cfg.zero_warmup:g} s, window {cfg.zero_window:g} s. CPU = user+system of "
        "each process tree over the window (psutil), Redis from `INFO cpu` (whole server, shared). "
        "Overhead percentiles are differences of percentiles."
        + (f" Extra env: {dict(cfg.extra_env)}." if cfg.extra_env else "")
        + (f" Each dialog starts with {cfg.history} finished messages of 47 words." if cfg.history else ""),
        "",
        f"Reply rows at the end: {statuses}.",
    ]
    lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


# A realistic message: 47 words.
HISTORY_MESSAGE = (
    "Could you explain again how the refund works when an order ships in two parts, and whether the "
    "shipping fee is returned for both parcels or only the first one? I also want to know how long it "
    "takes and if I need to print a label for each box."
)


async def dialogs_with_history(
    http: aiohttp.ClientSession, stack: BenchStack, cfg: Config, owners: list[load.Owner], n: int
) -> list[load.Dialog]:
    assert stack.stack is not None
    dialogs = await load.create_dialogs(http, stack.stack.base_url, owners, n)
    if cfg.history:
        ids = [dialog_id for _, dialog_id in dialogs]
        tokens = estimate_tokens(HISTORY_MESSAGE)
        await asyncio.to_thread(stack.seed_history, ids, cfg.history, HISTORY_MESSAGE, tokens)
    return dialogs


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases (under ~90 s)")
    parser.add_argument("--client-procs", type=int, default=None, help="client processes for closed loops")
    parser.add_argument("--slow-dialogs", type=int, default=None)
    parser.add_argument("--zero-dialogs", type=int, default=None)
    parser.add_argument("--owners", type=int, default=None, help="users owning the dialogs")
    parser.add_argument("--overhead-dialogs", type=int, default=None)
    parser.add_argument("--accept-rate", type=float, default=None)
    parser.add_argument("--concurrency", type=int, default=None, help="threads of the llm worker")
    parser.add_argument("--no-deflate", action="store_true", help="WebSockets without permessage-deflate")
    parser.add_argument("--log-level", default=None, help="CHATAI_LOG_LEVEL of the API and worker")
    parser.add_argument("--api-procs", type=int, default=None, help="API processes (uvicorn --workers)")
    parser.add_argument("--phases", default=None, help="comma-separated subset of " + ",".join(Config.phases))
    parser.add_argument(
        "--py-spy",
        action="append",
        default=[],
        metavar="TARGET:PHASE:FILE",
        help="record api|worker during overhead|accept|slow|zero into FILE (py-spy raw format)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra env of the API and worker"
    )
    parser.add_argument(
        "--py-spy-args", default=None, help=f"py-spy options (default {Config.py_spy_args!r})"
    )
    parser.add_argument(
        "--history", type=int, default=None, help="finished messages per dialog before the run"
    )
    parser.add_argument("--redis-url", default=None, help="Redis db of the run (flushed at start)")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the table ('' = nowhere)")
    args = parser.parse_args(argv)
    cfg = Config.quick_mode() if args.quick else Config(quick=False)
    changes: dict[str, object] = {}
    if args.history is not None:
        changes["history"] = args.history
    if args.redis_url:
        changes["redis_url"] = args.redis_url
    if args.client_procs is not None:
        changes["client_procs"] = args.client_procs
    if args.slow_dialogs is not None:
        changes["slow_dialogs"] = args.slow_dialogs
    if args.overhead_dialogs is not None:
        changes["overhead_dialogs"] = args.overhead_dialogs
    if args.accept_rate is not None:
        changes["accept_rate"] = args.accept_rate
    if args.owners is not None:
        changes["owners"] = args.owners
    if args.zero_dialogs is not None:
        changes["zero_dialogs"] = args.zero_dialogs
    if args.concurrency is not None:
        changes["llm_concurrency"] = args.concurrency
    if args.no_deflate:
        changes["deflate"] = False
    if args.log_level:
        changes["log_level"] = args.log_level
    if args.api_procs is not None:
        changes["api_processes"] = args.api_procs
    if args.phases:
        changes["phases"] = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    if args.py_spy:
        changes["py_spy"] = tuple(tuple(spec.split(":", 2)) for spec in args.py_spy)
    if args.env:
        changes["extra_env"] = tuple(tuple(e.split("=", 1)) for e in args.env)
    if args.py_spy_args is not None:
        changes["py_spy_args"] = args.py_spy_args
    cfg = replace(cfg, **changes)  # type: ignore[arg-type]
    global RESULTS_OUT
    RESULTS_OUT = args.out
    return cfg


RESULTS_OUT = str(RESULTS)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    started = time.monotonic()
    report = Report()
    # The accept phase queues thousands of replies with the llm consumer paused, on purpose.
    env = {"CHATAI_ADMISSION_MAX_QUEUED_REPLIES": "0", **dict(cfg.extra_env)}
    stack = BenchStack(cfg.redis_url, cfg.llm_concurrency, cfg.log_level, env, cfg.api_processes)
    statuses: dict[str, int] = {}
    try:
        print("starting Postgres, fake LLM, API and llm worker …", file=sys.stderr, flush=True)
        stack.start()
        progress(f"system up (logs in {LOG_DIR})")
        noop_rate, noop_cpu = 0.0, "—"
        if "noop" in cfg.phases:
            noop_rate, noop_task_cpu = measure_noop(stack, cfg, report)
            noop_cpu = f"no-op task {noop_task_cpu * 1000:.2f} ms"
            progress("no-op Celery baseline")
        load.run_loop(run_phases(stack, cfg, report, noop_rate, noop_cpu))
        progress("zero-latency throughput")
        statuses = stack.reply_status_counts()
        report.notes += log_errors(stack)
    finally:
        print("stopping …", file=sys.stderr, flush=True)
        stack.stop()
    table = render(cfg, report, time.monotonic() - started, statuses)
    print(table)
    if RESULTS_OUT:
        Path(RESULTS_OUT).parent.mkdir(parents=True, exist_ok=True)
        Path(RESULTS_OUT).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
