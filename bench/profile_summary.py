"""Summarise a py-spy ``--format raw`` (collapsed stacks) profile: where the samples go.

    .venv/bin/python bench/profile_summary.py /tmp/worker.txt [--top 25]

Three views, each in % of all samples (with ``--gil`` every sample is a moment the process ran Python):
by library (the leaf-most frame that belongs to a known package), by first-party function (the leaf-most
frame in api/, core/, services/, tasks/, workers/), and by leaf function (self time).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FIRST_PARTY = ("api/", "core/", "services/", "tasks/", "workers/", "models/")
# Checked in order against each frame's file, leaf first.
LIBRARIES = [
    ("logging (stdlib logging + python-json-logger)", ("logging/", "pythonjsonlogger/")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("psycopg", ("psycopg/", "psycopg_pool/", "psycopg_binary/")),
    ("redis-py", ("redis/",)),
    ("Celery/kombu", ("celery/", "kombu/", "billiard/", "vine/", "amqp/")),
    ("openai SDK", ("openai/",)),
    ("httpx2/httpx", ("httpx2/", "httpx/", "httpcore/")),
    ("aiohttp/yarl/multidict", ("aiohttp/", "yarl/", "multidict/", "aiohappyeyeballs/")),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("tenacity", ("tenacity/",)),
    ("json (stdlib)", ("json/",)),
    ("uuid/datetime/enum (stdlib)", ("uuid.py", "datetime.py", "enum.py", "_strptime.py")),
    ("greenlet", ("greenlet/",)),
    ("asyncio (loop, transports, streams)", ("asyncio/", "selectors.py", "ssl.py", "socket.py")),
    ("threading/concurrent.futures", ("threading.py", "concurrent/", "queue.py")),
]
# The llm worker's activities, first match wins; a stack is tested on its function names and files.
ROLES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    # (role, function-name substrings, file substrings)
    ("Celery consumer thread (broker I/O, acks, task events)", ("_run_module_as_main",), ()),
    (
        "Celery pool threads (task trace, logging, waiting on the loop)",
        ("fast_trace_task", "apply_target"),
        ("concurrent/futures/thread.py",),
    ),
    (
        "Event publishing: DeltaPublisher / EventBus.apublish (Redis EVALSHA)",
        ("DeltaPublisher", "EventBus."),
        ("core/events.py", "services/chat/delivery.py"),
    ),
    (
        "Postgres: SQLAlchemy ORM + psycopg (claim, finish, heartbeat)",
        (),
        ("sqlalchemy/", "psycopg/", "services/chat/replies.py", "core/db.py"),
    ),
    (
        "LLM stream: openai SDK on aiohttp (request build, SSE, JSON)",
        ("OpenAICompatibleProvider", "_sse_data"),
        ("openai/", "aiohttp/", "httpx2/", "httpx/", "yarl/", "multidict/"),
    ),
    ("Redis async client, no caller frame (mostly publish replies)", ("StreamReader.",), ("redis/",)),
    ("Cancel checks (Redis)", (), ("services/chat/cancellation.py",)),
    (
        "Thread <-> loop bridging (run_coroutine_threadsafe)",
        ("_chain_future", "run_coroutine_threadsafe"),
        ("workers/loop.py",),
    ),
]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for raw in stack.split(";"):
            m = _FRAME.match(raw.strip())
            frames.append((m["func"], m["file"]) if m else (raw.strip(), ""))
        stacks.append((frames, int(count)))
    return stacks


def library_of(file: str) -> str | None:
    for name, prefixes in LIBRARIES:
        if any(p in file for p in prefixes):
            return name
    return None


def role_of(frames: list[tuple[str, str]]) -> str:
    for role, funcs, files in ROLES:
        for func, file in frames:
            if any(f in func for f in funcs) or any(f in file for f in files):
                return role
    return "asyncio loop and other"


def summarise(path: Path, top: int) -> str:
    stacks = parse(path)
    total = sum(n for _, n in stacks) or 1
    by_lib: Counter[str] = Counter()
    by_app: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_role: Counter[str] = Counter()
    for frames, n in stacks:
        by_role[role_of(frames)] += n
        leaf_func, leaf_file = frames[-1]
        by_leaf[f"{leaf_func} ({leaf_file})"] += n
        lib = next((lib for _, f in reversed(frames) if (lib := library_of(f))), None)
        by_lib[lib or f"other ({leaf_file})"] += n
        app = next((f"{fn} ({f})" for fn, f in reversed(frames) if f.startswith(FIRST_PARTY)), None)
        if app is None:
            outer = next((lib for _, f in frames if (lib := library_of(f)) and "asyncio" not in lib), None)
            app = f"[no first-party frame: {outer or 'asyncio loop'}]"
        by_app[app] += n
        for key in {f"{fn} ({f})" for fn, f in frames if f.startswith(FIRST_PARTY)}:
            inclusive[key] += n

    def table(title: str, counts: Counter[str]) -> list[str]:
        rows = [f"### {title}", "", "| % | samples | where |", "|---:|---:|---|"]
        rows += [f"| {n / total * 100:.1f} | {n} | `{k}` |" for k, n in counts.most_common(top)]
        return [*rows, ""]

    out = [f"{path}: {total} samples", ""]
    if not any("uvicorn/" in f for frames, _ in stacks for _, f in frames):  # the roles are the worker's
        out += table("By activity (llm worker roles; first matching rule)", by_role)
    out += table("By library (leaf-most known package)", by_lib)
    out += table("By first-party function (leaf-most frame in our code; self + libraries it calls)", by_app)
    out += table("Inclusive, first-party functions", inclusive)
    out += table("Self time by leaf function", by_leaf)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
