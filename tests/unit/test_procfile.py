"""The development Procfile starts exactly one worker per queue of the registry, plus the fixed processes."""

from __future__ import annotations

import re
from pathlib import Path

from cli.process_manager import read_procfile
from core.queues import QUEUES

PROCFILE = Path(__file__).resolve().parents[2] / "deploy" / "Procfile"
WORKER = re.compile(r"\bworkers\.run\s+(\S+)")
FIXED = {"api", "beat", "flower"}


def _processes() -> dict[str, str]:
    """Name → command, as the process manager reads them (a name given twice is an error there)."""
    return {process.name: process.command for process in read_procfile(PROCFILE)}


def _workers() -> dict[str, str]:
    """Process name → the queue its ``python -m workers.run <queue>`` command names."""
    found: dict[str, str] = {}
    for name, command in _processes().items():
        match = WORKER.search(command)
        if match:
            found[name] = match.group(1)
    return found


def test_every_queue_has_a_worker() -> None:
    missing = set(QUEUES) - set(_workers().values())
    assert not missing, f"queues without a worker line in {PROCFILE}: {sorted(missing)}"


def test_every_worker_names_a_known_queue() -> None:
    unknown = {name: queue for name, queue in _workers().items() if queue not in QUEUES}
    assert not unknown, f"Procfile workers for queues not in core.queues.QUEUES: {unknown}"


def test_one_worker_per_queue_named_after_it() -> None:
    workers = _workers()
    assert sorted(workers.values()) == sorted(set(workers.values())), "a queue has two worker lines"
    assert all(name == queue for name, queue in workers.items()), workers


def test_fixed_processes_are_present() -> None:
    processes = _processes()
    assert set(processes) >= FIXED, f"missing: {sorted(FIXED - set(processes))}"
    assert "api.app:create_app" in processes["api"] and "--factory" in processes["api"]
    assert "beat" in processes["beat"] and "flower" in processes["flower"]
