"""The start-up check that every routed queue has a worker configured."""

from __future__ import annotations

from pathlib import Path

from workers.checks import PROCFILE, check_configured, main


def test_the_procfile_consumes_every_routed_queue() -> None:
    assert check_configured(PROCFILE) == []
    assert main(["configured", str(PROCFILE)]) == 0


def test_a_routed_queue_without_a_worker_is_reported(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    lines = [line for line in PROCFILE.read_text().splitlines() if "workers.run billing" not in line]
    procfile.write_text("\n".join(lines) + "\n")
    problems = check_configured(procfile)
    assert len(problems) == 1 and "'billing'" in problems[0]
    assert main(["configured", str(procfile)]) == 1


def test_a_worker_for_an_unknown_queue_is_reported(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(PROCFILE.read_text() + "mail: python -m workers.run mail\n")
    assert check_configured(procfile) == ["queue 'mail' is not in core.queues.QUEUES"]
