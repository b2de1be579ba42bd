"""The OpenAI-compatible ``/v1`` API: what it adds over the model, against the WebSocket path in the same run.

    .venv/bin/python bench/v1_api.py [--quick] [--streams 1000]

Starts the benchmark stack of ``bench/chat_pipeline.py`` (embedded Postgres ``chatai_bench``, Redis db 9,
the fake LLM, one uvicorn API process, one llm worker process) and measures:

1. baseline: time to first token straight from the fake LLM through the ``openai`` SDK;
2. the WebSocket path: ``POST /api/dialogs/{id}/messages`` then the first ``reply.delta`` on the dialog's
   socket (closed loop), and the API's CPU per reply;
3. the ``/v1`` path: ``POST /v1/chat/completions`` with ``stream: true`` until the first content chunk
   (closed loop, same concurrency and LLM), and the API's CPU per streamed reply;
4. one API process holding ``--streams`` concurrent ``/v1`` streams of a slow LLM: all open at once
   (the API's own ``chatai_v1_streams`` gauge), its CPU and memory, and how they end.

Added latency = the path's time to first chunk minus the model's (p50 - p50, p99 - p99). Prints a markdown
table and writes it to ``bench/results/v1_api.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
import psutil  # noqa: E402

from bench import load  # noqa: E402
from bench.chat_pipeline import TOKENS, FakeLLMControl, progress  # noqa: E402
from bench.report import Report, log_errors  # noqa: E402
from bench.stack import API_KEY, LOG_DIR, BenchStack  # noqa: E402
from bench.stats import ms, own_cpu_seconds, p50, p99  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "v1_api.md"


@dataclass(frozen=True)
class Config:
    quick: bool = False
    redis_url: str = "redis://127.0.0.1:6379/9"
    owners: int = 10
    # Concurrent clients of the WebSocket and /v1 closed loops: few enough that the API is not the
    # bottleneck, so the first chunk's latency is the path's own.
    dialogs: int = 20
    token_delay_ms: float = 40.0
    warmup: float = 2.0
    window: float = 15.0
    streams: int = 1000  # concurrent /v1 streams held by the one API process
    # The streams open over hold_ramp seconds and each reply lasts longer than it takes one API process to
    # accept them all on a small, busy machine (50 tokens x 4 s = 196 s), so all are open at once.
    hold_token_delay_ms: float = 4000.0
    hold_ramp: float = 60.0
    llm_concurrency: int = 1100  # the llm worker generates every held stream at once

    @classmethod
    def quick_mode(cls) -> Config:
        return cls(quick=True, window=6.0, streams=300, hold_token_delay_ms=400.0, hold_ramp=10.0,
                   llm_concurrency=400)  # fmt: skip


@dataclass
class V1Client:
    """One API key's client of ``/v1/chat/completions``: streams and records when each chunk came."""

    url: str
    key: str
    model: str

    async def stream(
        self, http: aiohttp.ClientSession, content: str
    ) -> tuple[float, float, float, str, float]:
        """(start, first content chunk, end, outcome, response headers) of one streamed completion."""
        body = {"model": self.model, "messages": [{"role": "user", "content": content}], "stream": True}
        headers = {"Authorization": f"Bearer {self.key}", **load.JSON}
        t0, first, outcome, accepted = load.now(), math.nan, "no_done", math.nan
        try:
            async with http.post(self.url, data=orjson.dumps(body), headers=headers) as r:
                accepted = load.now()
                if r.status != 200:
                    await r.read()
                    return t0, first, load.now(), f"http_{r.status}", accepted
                async for line in r.content:
                    if math.isnan(first) and line.startswith(b"data: {") and b'"content"' in line:
                        chunk = orjson.loads(line[6:])
                        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                            first = load.now()
                    elif line.startswith(b"data: [DONE]"):
                        outcome = "done"
                    elif line.startswith(b'data: {"error"'):
                        outcome = "error_event"
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        return t0, first, load.now(), outcome, accepted


@dataclass
class Window:
    """Requests of a closed loop, and the API's CPU seconds over its measured window."""

    starts_firsts: list[tuple[float, float]] = field(default_factory=list)
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    api_cpu: float = math.nan


async def setup_keys(http: aiohttp.ClientSession, base_url: str, owners: list[load.Owner]) -> list[V1Client]:
    clients = []
    for owner in owners:
        headers = {"Authorization": f"Bearer {owner.token}"}
        async with http.post(f"{base_url}/api/api-keys", json={"name": "bench"}, headers=headers) as r:
            key = (await load._json(r, 201))["key"]
        clients.append(V1Client(f"{base_url}/v1/chat/completions", key, owner.assistant_id))
    return clients


async def api_window(stack: BenchStack, start: float, cfg: Config, out: Window) -> None:
    await asyncio.sleep(max(0.0, start + cfg.warmup - load.now()))
    c0 = stack.cpu_snapshot()["api"]
    await asyncio.sleep(cfg.window)
    out.api_cpu = stack.cpu_snapshot()["api"] - c0


async def ws_phase(stack: BenchStack, cfg: Config, owners: list[load.Owner]) -> Window:
    assert stack.stack is not None
    out = Window()
    async with load.http_session(limit=64) as http:
        dialogs = await load.create_dialogs(http, stack.stack.base_url, owners, cfg.dialogs)
    windows: list[asyncio.Task[None]] = []

    async def ready() -> float:
        start = load.now() + 0.2
        windows.append(asyncio.create_task(api_window(stack, start, cfg, out)))
        return start

    params = load.PartParams(
        stack.stack.base_url, stack.stack.ws_url, dialogs, warmup_s=cfg.warmup, window_s=cfg.window,
        stagger_s=1.0,
    )  # fmt: skip
    result = await load.closed_loop_part(params, ready)
    await asyncio.gather(*windows)
    for t_post, _, t_first, t_end, kind, _ in result.turns:
        if result.w0 <= t_post < result.w1 and kind == "reply.completed":
            out.starts_firsts.append((t_post, t_first))
        if result.w0 <= t_end < result.w1 and kind == "reply.completed":
            out.completed += 1
    out.errors = result.errors
    return out


async def v1_phase(stack: BenchStack, cfg: Config, clients: list[V1Client]) -> Window:
    out = Window()
    start = load.now() + 0.2
    w0, w1 = start + cfg.warmup, start + cfg.warmup + cfg.window
    window = asyncio.create_task(api_window(stack, start, cfg, out))
    async with load.http_session(limit=0, timeout=60) as http:

        async def slot(i: int) -> None:
            client = clients[i % len(clients)]
            await asyncio.sleep(max(0.0, start + random.uniform(0, 1.0) - load.now()))
            n = 0
            while load.now() < w1:
                t0, first, end, outcome, _ = await client.stream(http, f"bench question {i}.{n}")
                n += 1
                if outcome != "done":
                    out.errors[outcome] += 1
                    await asyncio.sleep(0.1)
                    continue
                if w0 <= t0 < w1:
                    out.starts_firsts.append((t0, first))
                if w0 <= end < w1:
                    out.completed += 1

        await asyncio.gather(*(slot(i) for i in range(cfg.dialogs)))
    await window
    return out


async def api_streams_gauge(http: aiohttp.ClientSession, base_url: str) -> float:
    async with http.get(f"{base_url}/metrics") as r:
        text = await r.text()
    values = [line.split()[-1] for line in text.splitlines() if line.startswith("chatai_v1_streams ")]
    return float(values[0]) if values else math.nan


async def hold_phase(stack: BenchStack, cfg: Config, clients: list[V1Client], report: Report) -> None:
    """``cfg.streams`` streams opened over ``hold_ramp`` seconds, each lasting the slow LLM's reply."""
    assert stack.stack is not None and stack.api is not None
    api = psutil.Process(stack.api.proc.pid)
    rss0 = api.memory_info().rss
    results: list[tuple[float, float, float, str, float]] = []
    peak_open, peak_rss, samples = 0.0, rss0, []
    cpu0, client0, t0 = stack.cpu_snapshot(), own_cpu_seconds(), load.now()
    timeout = cfg.hold_ramp + reply_seconds(cfg) * 4
    async with load.http_session(limit=0, timeout=timeout) as http, load.http_session(limit=4) as probe:

        async def one(i: int) -> None:
            await asyncio.sleep(cfg.hold_ramp * i / cfg.streams)
            results.append(await clients[i % len(clients)].stream(http, f"hold {i}"))

        async def watch() -> None:
            nonlocal peak_open, peak_rss
            while len(results) < cfg.streams:
                samples.append(await api_streams_gauge(probe, stack.stack.base_url))  # type: ignore[union-attr]
                peak_open = max(peak_open, samples[-1])
                peak_rss = max(peak_rss, api.memory_info().rss)
                await asyncio.sleep(0.5)

        await asyncio.gather(watch(), *(one(i) for i in range(cfg.streams)))
    elapsed = load.now() - t0
    cpu1, client_cpu = stack.cpu_snapshot(), own_cpu_seconds() - client0
    outcomes = Counter(r[3] for r in results)
    firsts = [r[1] - r[0] for r in results if not math.isnan(r[1])]
    accepts = [r[4] - r[0] for r in results if not math.isnan(r[4])]
    after_accept = [r[1] - r[4] for r in results if not math.isnan(r[1] + r[4])]
    durations = [r[2] - r[0] for r in results if r[3] == "done"]
    api_cpu = cpu1["api"] - cpu0["api"]
    reply_s = reply_seconds(cfg)
    report.add(
        f"**One API process holding {cfg.streams} concurrent /v1 streams** "
        f"(opened over {cfg.hold_ramp:g} s; "
        f"{TOKENS} tokens x {cfg.hold_token_delay_ms:g} ms; p50/p99: first content chunk)",
        p50=ms(p50(firsts)), p99=ms(p99(firsts)),
        value=f"{peak_open:.0f} open at once (API gauge); "
        f"{outcomes.get('done', 0)}/{cfg.streams} ended [DONE]",
        baseline=f"reply stream {reply_s:.1f} s; duration p50 {ms(p50(durations))} "
        f"/ p99 {ms(p99(durations))}",
        target=f"outcomes {dict(outcomes)}",
    )  # fmt: skip
    report.add(
        f"… of which: POST → response headers (accepted) / headers → first content chunk "
        f"({cfg.streams} streams)",
        p50=f"{ms(p50(accepts))} / {ms(p50(after_accept))}",
        p99=f"{ms(p99(accepts))} / {ms(p99(after_accept))}",
    )  # fmt: skip
    report.add(
        f"API process while holding {cfg.streams} streams",
        value=f"CPU {api_cpu / elapsed * 100:.0f}% of a core over {elapsed:.0f} s "
        f"({api_cpu / max(1, outcomes.get('done', 0)) * 1000:.2f} ms per stream); "
        f"RSS {rss0 / 2**20:.0f} → peak {peak_rss / 2**20:.0f} MiB "
        f"(+{(peak_rss - rss0) / max(1, cfg.streams) / 1024:.0f} KiB per stream)",
        baseline=f"worker {(cpu1['worker'] - cpu0['worker']) / elapsed * 100:.0f}%, "
        f"bench client {client_cpu / elapsed * 100:.0f}% of a core",
    )


def reply_seconds(cfg: Config) -> float:
    return (TOKENS - 1) * cfg.hold_token_delay_ms / 1000


def latency_rows(report: Report, cfg: Config, ttft: list[float], ws: Window, v1: Window) -> None:
    label = f"{cfg.dialogs} clients, closed loop, {TOKENS} tokens x {cfg.token_delay_ms:g} ms"
    rows = {}
    for name, out in (("WebSocket: POST → first reply.delta", ws), ("/v1: POST → first content chunk", v1)):
        first = [f - s for s, f in out.starts_firsts if not math.isnan(f)]
        rows[name] = (p50(first) - p50(ttft), p99(first) - p99(ttft))
        report.add(
            f"{name} ({label})", p50=ms(p50(first)), p99=ms(p99(first)), value=f"n={len(first)}",
            baseline=f"model TTFT {ms(p50(ttft))} / {ms(p99(ttft))}",
            target=f"errors {dict(out.errors)}" if out.errors else "no errors",
        )  # fmt: skip
    (ws50, ws99), (v150, v199) = rows.values()
    report.add(
        "**Added latency of the first chunk over the model's first token**: WebSocket path",
        p50=ms(ws50), p99=ms(ws99),
    )  # fmt: skip
    report.add(
        "**Added latency of the first chunk over the model's first token**: /v1 SSE",
        p50=ms(v150), p99=ms(v199), baseline=f"WebSocket path {ms(ws50)} / {ms(ws99)}",
        target=f"/v1 - WebSocket: {ms(v150 - ws50)} / {ms(v199 - ws99)}",
    )  # fmt: skip
    for name, out in (("WebSocket path (POST + socket delivery)", ws), ("/v1 streamed completion", v1)):
        report.add(
            f"API CPU per reply, {name}",
            value=f"{out.api_cpu / max(1, out.completed) * 1000:.2f} ms "
            f"({out.api_cpu / cfg.window * 100:.0f}% of a core, {out.completed / cfg.window:.1f} replies/s)",
        )


async def run(stack: BenchStack, cfg: Config, report: Report) -> None:
    assert stack.stack is not None and stack.fake_llm is not None
    base_url = stack.stack.base_url
    llm = FakeLLMControl(stack)
    async with load.http_session(limit=64) as http:
        owners = await load.create_owners(
            http, base_url, cfg.owners, system_prompt="You are a bench assistant."
        )
        clients = await setup_keys(http, base_url, owners)
    progress("owners and keys created")
    await llm.set(cfg.token_delay_ms)
    ttft, errors = await load.llm_ttft_baseline(
        stack.fake_llm.base_url, API_KEY, cfg.dialogs, 1.0, cfg.window
    )
    report.add(
        f"Baseline: model time to first token, openai SDK direct ({cfg.dialogs} streams)",
        p50=ms(p50(ttft)), p99=ms(p99(ttft)), value=f"n={len(ttft)}",
        target=f"errors {dict(errors)}" if errors else "—",
    )  # fmt: skip
    progress("model TTFT baseline")
    ws = await ws_phase(stack, cfg, owners)
    await asyncio.to_thread(stack.wait_drained, 60)
    progress("WebSocket path")
    v1 = await v1_phase(stack, cfg, clients)
    await asyncio.to_thread(stack.wait_drained, 60)
    progress("/v1 path")
    latency_rows(report, cfg, ttft, ws, v1)
    await llm.set(cfg.hold_token_delay_ms)
    await hold_phase(stack, cfg, clients, report)
    progress(f"{cfg.streams} streams held")


def render(cfg: Config, report: Report, elapsed: float) -> str:
    mode, when = "--quick" if cfg.quick else "full", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"## v1_api ({mode}) — {when}",
        "",
        f"Run took {elapsed:.0f} s. One uvicorn API process, one llm worker process (threads pool "
        f"-c {cfg.llm_concurrency}), the fake LLM; {cfg.owners} owners, each with an API key.",
        "",
        "| metric | median (p50) | p99 | value | baseline | ratio/target |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.metric} | {r.p50} | {r.p99} | {r.value} | {r.baseline} | {r.target} |" for r in report.rows
    ]
    lines += ["", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases and 300 held streams")
    parser.add_argument("--streams", type=int, default=None, help="concurrent /v1 streams to hold")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the table ('' = nowhere)")
    args = parser.parse_args(argv)
    cfg = Config.quick_mode() if args.quick else Config()
    if args.streams is not None:
        cfg = replace(cfg, streams=args.streams, llm_concurrency=max(cfg.llm_concurrency, args.streams + 100))
    started, report = time.monotonic(), Report()
    stack = BenchStack(cfg.redis_url, cfg.llm_concurrency, "WARNING")
    try:
        print("starting Postgres, fake LLM, API and llm worker …", file=sys.stderr, flush=True)
        stack.start()
        progress(f"system up (logs in {LOG_DIR})")
        load.run_loop(run(stack, cfg, report))
        report.notes += log_errors(stack)
    finally:
        stack.stop()
    table = render(cfg, report, time.monotonic() - started)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
