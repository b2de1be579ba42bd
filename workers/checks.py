"""Checks that every routed queue is consumed: configured (at start-up) and alive (on demand).

``python -m workers.checks configured [Procfile]`` fails when a queue tasks are routed to has no worker
line; ``python -m workers.checks alive [--queue Q] [--host H]`` asks the workers over the broker
(``celery inspect active_queues``) and fails when a queue has no live consumer (on that host). Exit 0
means healthy, 1 not; the reason goes to stderr.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from core.queues import QUEUES, ROUTES

PROCFILE = Path(__file__).resolve().parents[1] / "deploy" / "Procfile"
_WORKER_LINE = re.compile(r"^[A-Za-z0-9_-]+:.*\bworkers\.run\s+(\S+)", re.MULTILINE)


def routed_queues() -> set[str]:
    return set(ROUTES.values())


def configured_consumers(procfile_text: str) -> set[str]:
    """The queues the Procfile starts a ``python -m workers.run <queue>`` worker for."""
    return set(_WORKER_LINE.findall(procfile_text))


def unconsumed(routed: Iterable[str], consumed: Iterable[str]) -> list[str]:
    return sorted(set(routed) - set(consumed))


def check_configured(procfile: Path = PROCFILE) -> list[str]:
    """Problems with the configured consumers: routed queues without a worker, or unknown queues."""
    consumed = configured_consumers(procfile.read_text())
    missing = unconsumed(routed_queues(), consumed)
    problems = [f"queue {q!r} has tasks routed to it and no worker in {procfile}" for q in missing]
    problems += [f"queue {q!r} is not in core.queues.QUEUES" for q in sorted(consumed - set(QUEUES))]
    return problems


def live_consumers(timeout: float = 5.0) -> dict[str, set[str]]:
    """Queue → the worker nodes consuming it, from the workers' own answers over the broker."""
    from workers.app import celery_app

    replies = celery_app.control.inspect(timeout=timeout).active_queues() or {}
    consumers: dict[str, set[str]] = {}
    for node, queues in replies.items():
        for queue in queues:
            consumers.setdefault(queue["name"], set()).add(node)
    return consumers


def check_alive(queues: Iterable[str], host: str | None = None, timeout: float = 5.0) -> list[str]:
    consumers = live_consumers(timeout)
    problems = []
    for queue in sorted(set(queues)):
        nodes = {n for n in consumers.get(queue, set()) if host is None or n.endswith(f"@{host}")}
        if not nodes:
            where = f" on {host}" if host else ""
            problems.append(f"no live worker consumes queue {queue!r}{where}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.checks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    configured = sub.add_parser("configured", help="every routed queue has a worker line in the Procfile")
    configured.add_argument("procfile", nargs="?", type=Path, default=PROCFILE)
    alive = sub.add_parser("alive", help="every routed queue (or --queue) has a live consumer")
    alive.add_argument("--queue", action="append", choices=sorted(QUEUES))
    alive.add_argument("--host", help="only workers whose node name ends with @HOST")
    alive.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.command == "configured":
        problems = check_configured(args.procfile)
    else:
        problems = check_alive(args.queue or routed_queues(), args.host, args.timeout)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
