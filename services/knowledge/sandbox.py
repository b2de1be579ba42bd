"""Text extraction in a child process with memory and CPU limits, so a decompression bomb costs that
child and never the worker.

The parent (an ``embeddings`` prefork child, a CLI, a test) starts ``python -m
services.knowledge.sandbox JOB`` (JOB: the kind and the limits, as JSON) with the file on stdin; the
child sets its own ``RLIMIT_AS`` and ``RLIMIT_CPU`` before it reads a byte and answers one JSON object
on stdout: ``{"text": …}`` or ``{"error": …, "code": …}``. A child the kernel kills (memory, CPU) or
that outlives its wall-clock deadline means the document is too large; either way ``ParseError``
reaches the caller, which fails the document without a retry.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from subprocess import DEVNULL, PIPE

from services.knowledge.parsing import DocumentTooLarge, Kind, ParseError, ParseLimits, extract_text

# The child imports only the parsers (not the settings), so it starts in a fraction of a second.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The child needs room for the interpreter and the parsers' imports before the document counts.
WALL_CLOCK_FACTOR = 2


def extract_text_isolated(
    data: bytes, kind: Kind | str, heartbeat: Callable[[], object] | None = None
) -> str:
    """The document's text, extracted by a child process under rlimits; raises ``ParseError``.

    ``heartbeat`` is called every quarter of ``document_silence_seconds`` while the child works, so a
    long parse does not look like a silent worker to the reaper.
    """
    from core.settings import get_settings

    settings = get_settings()
    wall_clock = settings.parse_cpu_seconds * WALL_CLOCK_FACTOR + 10
    deadline = time.monotonic() + wall_clock
    step = max(settings.document_silence_seconds / 4, 0.1)
    job = {
        "kind": kind,
        "limits": asdict(ParseLimits.from_settings()),
        "memory_bytes": settings.parse_memory_bytes,
        "cpu_seconds": settings.parse_cpu_seconds,
    }
    argv = [sys.executable, "-m", "services.knowledge.sandbox", json.dumps(job)]
    with subprocess.Popen(argv, stdin=PIPE, stdout=PIPE, stderr=DEVNULL, cwd=PROJECT_ROOT) as child:
        pending: bytes | None = data
        while True:
            try:
                stdout, _ = child.communicate(pending, timeout=step)
                break
            except subprocess.TimeoutExpired:
                pending = None  # sent already; later calls only collect the output
                if time.monotonic() > deadline:
                    child.kill()
                    child.communicate()
                    raise DocumentTooLarge(
                        f"Reading the document took longer than {wall_clock:g} s"
                    ) from None
                if heartbeat is not None:
                    heartbeat()
    if child.returncode != 0:
        # Killed by SIGKILL/SIGXCPU, or an allocation the interpreter could not even report.
        raise DocumentTooLarge(
            "Reading the document needed more memory or CPU time than it may use "
            f"({settings.parse_memory_bytes} bytes, {settings.parse_cpu_seconds} s)"
        )
    try:
        answer = json.loads(stdout)
    except ValueError as exc:
        raise ParseError("The document could not be read") from exc
    if "error" in answer:
        error = DocumentTooLarge if answer["code"] == DocumentTooLarge.code else ParseError
        raise error(answer["error"])
    return str(answer["text"])


def _limit_self(memory_bytes: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # The soft limit sends SIGXCPU (the process dies); the hard one a second later is SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def main() -> None:
    job = json.loads(sys.argv[1])
    _limit_self(job["memory_bytes"], job["cpu_seconds"])
    data = sys.stdin.buffer.read()
    try:
        answer = {"text": extract_text(data, job["kind"], ParseLimits(**job["limits"]))}
    except ParseError as exc:
        answer = {"error": str(exc), "code": exc.code}
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
