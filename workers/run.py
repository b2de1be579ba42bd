"""Start a worker for one queue with the pool settings of the registry: ``python -m workers.run llm``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from core.queues import QUEUES


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


def multiprocess_metrics_dir(queue: str) -> Path:
    """A fresh directory for the metrics of this prefork worker's children (prometheus multiprocess mode).

    Under ``PROMETHEUS_MULTIPROC_DIR`` (or the data dir) one directory per worker process, so several
    workers on one machine never sum each other's samples; those of workers no longer running go.
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    base = Path(configured) if configured else Path(os.environ.get("CHATAI_DATA_DIR", ".data")) / "prometheus"
    for old in base.glob(f"{queue}-*"):
        pid = old.name.rpartition("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = base / f"{queue}-{os.getpid()}"  # execv keeps the pid: this is the worker's own
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path.resolve()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in QUEUES:
        sys.exit(f"usage: python -m workers.run {{{','.join(QUEUES)}}} [celery worker options]")
    queue = sys.argv[1]
    if QUEUES[queue].pool == "prefork":
        # Must be in the environment before prometheus_client is imported by the worker.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiprocess_metrics_dir(queue))
    else:
        # One process: its metrics stay in memory (and its DB pool collector works).
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = worker_argv(queue, sys.argv[2:])
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
