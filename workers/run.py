"""Start a worker for one queue with the pool settings of the registry: ``python -m workers.run llm``."""

from __future__ import annotations

import os
import sys

from workers.registry import QUEUES


def worker_argv(queue: str, extra: list[str] | None = None) -> list[str]:
    spec = QUEUES[queue]
    concurrency = os.environ.get(f"CHATAI_{queue.upper()}_CONCURRENCY", str(spec.concurrency))
    return [
        sys.executable, "-m", "celery", "-A", "workers.app", "worker",
        "-Q", spec.name,
        "-P", spec.pool,
        "-c", concurrency,
        "--prefetch-multiplier", str(spec.prefetch_multiplier),
        "-n", f"{spec.name}-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle",
        *(extra or []),
    ]  # fmt: skip


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in QUEUES:
        sys.exit(f"usage: python -m workers.run {{{','.join(QUEUES)}}} [celery worker options]")
    argv = worker_argv(sys.argv[1], sys.argv[2:])
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
