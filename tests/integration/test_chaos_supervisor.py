"""The chaos run's supervisor restarts a process that exits, as systemd's Restart=always does."""

from __future__ import annotations

from pathlib import Path

from bench.chaos import Supervisor, Unit
from tests.fixtures.processes import eventually, python_argv


def test_a_killed_unit_is_started_again_and_counted(tmp_path: Path) -> None:
    supervisor = Supervisor()
    unit = Unit("sleeper", python_argv("-c", "import time; time.sleep(60)"), {}, tmp_path)
    supervisor.add(unit)
    supervisor.start()
    try:
        first = eventually(lambda: unit.child, 10, "the unit to start")
        unit.kill()
        second = eventually(lambda: unit.child if unit.child is not first else None, 10, "a restart")
        assert second.proc.poll() is None
        assert unit.restarts == 1
    finally:
        supervisor.stop()
    assert second.proc.poll() is not None  # stopped with the supervisor
