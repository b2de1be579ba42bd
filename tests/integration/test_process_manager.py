"""supervisord on a Procfile of two plain processes: one that keeps crashing is retried with a growing
delay and every exit is logged, while the other keeps running; Ctrl-C stops both."""

from __future__ import annotations

import itertools
import os
import re
import signal
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import psutil

from cli.process_manager import supervisord_argv, write_config
from tests.fixtures.processes import Child, eventually

SPAWNED = re.compile(r"^(\S+ \S+) INFO spawned: 'crashing' with pid \d+", re.MULTILINE)


def test_a_crashing_process_is_retried_with_backoff_and_the_others_keep_running(log_dir: Path) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="chatai-pm-"))
    procfile = run_dir / "Procfile"
    procfile.write_text("crashing: echo starting && exit 3\nsteady: sleep 600\n")
    config = write_config(procfile, run_dir, run_dir)
    manager = Child("supervisord", supervisord_argv(config), dict(os.environ), log_dir)
    try:
        manager.wait_for_log("spawned: 'steady'", timeout=30)
        steady = eventually(lambda: _child_pid(manager.proc.pid, "sleep"), 30, "steady to run")
        eventually(lambda: len(SPAWNED.findall(manager.log_text())) >= 4, 60, "four starts of crashing")
        log = manager.log_text()
        assert "exited: crashing (exit status 3; not expected)" in log
        assert re.search(r"^crashing\s+\| starting$", log, re.MULTILINE), "its output, with its name"
        starts = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in SPAWNED.findall(log)]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        # supervisord waits 1 s, then 2 s, then 3 s ... before the next start of a process that
        # exited within its start seconds.
        assert gaps[1] >= 1.9 and gaps[2] >= 2.9, gaps
        assert _child_pid(manager.proc.pid, "sleep") == steady, "the other process was restarted"

        os.kill(manager.proc.pid, signal.SIGINT)
        manager.proc.wait(60)
        assert "stopped: steady (terminated by SIGTERM)" in manager.log_text(), "asked to stop, not killed"
        assert not psutil.pid_exists(steady) or psutil.Process(steady).status() == psutil.STATUS_ZOMBIE
    finally:
        if manager.proc.poll() is None:
            os.kill(manager.proc.pid, signal.SIGINT)
            manager.proc.wait(60)
        manager.stop()


def test_a_hang_up_stops_every_process_instead_of_reloading_them(log_dir: Path) -> None:
    """Closing the terminal (SIGHUP to ``chatai up``) stops the stack: supervisord alone would reload."""
    run_dir = Path(tempfile.mkdtemp(prefix="chatai-pm-"))
    procfile = run_dir / "Procfile"
    procfile.write_text("steady: sleep 600\n")
    config = write_config(procfile, run_dir, run_dir)
    code = (
        "import os, sys; from cli.process_manager import run_in_foreground; "
        "sys.exit(run_in_foreground(sys.argv[1:], dict(os.environ)))"
    )
    up = Child("up", [sys.executable, "-c", code, *supervisord_argv(config)], dict(os.environ), log_dir)
    try:
        up.wait_for_log("spawned: 'steady'", timeout=30)
        steady = eventually(lambda: _child_pid(up.proc.pid, "sleep", recursive=True), 30, "steady to run")
        os.kill(up.proc.pid, signal.SIGHUP)
        up.proc.wait(60)
        assert "stopped: steady (terminated by SIGTERM)" in up.log_text()
        assert not psutil.pid_exists(steady) or psutil.Process(steady).status() == psutil.STATUS_ZOMBIE
    finally:
        if up.proc.poll() is None:
            os.kill(up.proc.pid, signal.SIGTERM)
            up.proc.wait(60)
        up.stop()


def _child_pid(parent: int, name: str, recursive: bool = False) -> int | None:
    for child in psutil.Process(parent).children(recursive=recursive):
        if child.name() == name:
            return child.pid
    return None
