"""The table's rows, notes from the processes' logs, and py-spy around a phase."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.stack import BenchStack


@dataclass
class Row:
    metric: str
    p50: str = "—"
    p99: str = "—"
    value: str = "—"
    baseline: str = "—"
    target: str = "—"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, **cells: str) -> None:
        self.rows.append(Row(metric, **cells))


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def start_py_spy(
    specs: Iterable[tuple[str, str, str]],
    options: str,
    stack: BenchStack,
    phase: str,
    delay: float,
    duration: float,
) -> list[subprocess.Popen[bytes]]:
    """Sample the API or worker (``specs``: target, phase, output file) during a phase's window."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spies = []
    for target, spy_phase, path in specs:
        child = {"api": stack.api, "worker": stack.worker}[target]
        if spy_phase != phase or child is None:
            continue
        argv = [
            "/bin/sh", "-c", f'sleep {delay:.1f} && exec "$0" "$@"', exe, "record", "--pid",
            str(child.proc.pid), "--duration", str(max(1, int(duration - 1))), "--format", "raw", "-o", path,
            *options.split(),
        ]  # fmt: skip
        spies.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    return spies


def finish_py_spy(spies: list[subprocess.Popen[bytes]], report: Report) -> None:
    for spy in spies:
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        report.notes.append(f"py-spy {' '.join(spy.args[4:])}: exit {spy.returncode} {tail[0][:200]}")


def log_errors(stack: BenchStack) -> list[str]:
    """Errors and warnings the API and worker logged during the run, counted by message."""
    notes = []
    for child in (stack.api, stack.worker):
        if child is None:
            continue
        counts: Counter[str] = Counter()
        for line in child.log_text().splitlines():
            if '"level": "ERROR"' in line or '"level": "WARNING"' in line:
                try:
                    message = json.loads(line).get("message", "")
                except ValueError:
                    message = line
                counts[re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", message)[:160]] += 1
        for message, n in counts.most_common(5):
            notes.append(f"{child.name} logged {n} x `{message}`")
    return notes
