"""``make run`` as a developer runs it: ``chatai up`` brings up every Procfile process under supervisord,
restarts the one that dies (leaving the others alone), and Ctrl-C stops them all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psutil

from cli.process_manager import GROUP, read_procfile, supervisorctl_argv
from core.queues import QUEUES
from tests.fixtures.processes import ROOT, Child, eventually, free_port
from tests.fixtures.stack import base_env

STATUS_LINE = re.compile(rf"^{GROUP}:(\S+)\s+RUNNING\s+pid (\d+),", re.MULTILINE)
# Ten processes start at once on a shared two-core machine: give them time.
START_SECONDS = 240


def test_make_run_restarts_what_dies_and_ctrl_c_stops_everything(
    database_url: str, stack_redis_url: str, log_dir: Path
) -> None:
    api_port, flower_port = free_port(), free_port()
    # A short data dir of its own: supervisord's socket lives there.
    data_dir = Path(tempfile.mkdtemp(prefix="chatai-run-"))
    env = base_env(database_url, stack_redis_url, data_dir)
    env.update(
        {
            "CHATAI_PORT": str(api_port),
            "CHATAI_FLOWER_PORT": str(flower_port),
            "CHATAI_FLOWER_BASIC_AUTH": "ops:secret",
            "CHATAI_LLM_CONCURRENCY": "20",
            "CHATAI_TELEGRAM_CONCURRENCY": "4",
        }
    )
    config = data_dir / "supervisor" / "supervisord.conf"
    names = {process.name for process in read_procfile(ROOT / "deploy" / "Procfile")}
    api_ready = f"http://127.0.0.1:{api_port}/health/ready"
    run = Child("chatai-up", [str(Path(sys.executable).parent / "chatai"), "up"], env, log_dir)
    try:
        eventually(lambda: _get(api_ready) == 200, START_SECONDS, "the API to be ready")
        for queue in QUEUES:  # each worker's output reaches the terminal with its name in front
            eventually(
                lambda q=queue: _prefixed(run, q, " ready."), START_SECONDS, f"the {queue} worker to be ready"
            )
        eventually(lambda: _prefixed(run, "beat", "beat: Starting"), 60, "beat to start")
        flower = f"http://127.0.0.1:{flower_port}/"
        eventually(lambda: _get(flower, auth=("ops", "secret")) == 200, 60, "Flower to answer")
        assert _get(flower) == 401, "Flower requires its credentials"
        before = eventually(lambda: _all_running(config, env, names), 30, "every process to be RUNNING")

        for name in ("llm", "api"):
            os.kill(before[name], signal.SIGKILL)
        run.wait_for_log("exited: llm (terminated by SIGKILL; not expected)", timeout=30)
        run.wait_for_log("exited: api (terminated by SIGKILL; not expected)", timeout=30)
        after = eventually(
            lambda: (p := _all_running(config, env, names)) and p["llm"] != before["llm"] and p, 60,
            "llm to be restarted",
        )  # fmt: skip
        assert after["api"] != before["api"]
        assert {n: after[n] for n in names - {"llm", "api"}} == {n: before[n] for n in names - {"llm", "api"}}
        # The new llm worker consumes: it answers a ping over the broker under its new pid's node name.
        node = f"llm-{after['llm']}@{socket.gethostname()}"
        eventually(lambda: _pings(node, env), 90, f"{node} to answer a ping")
        eventually(lambda: _get(api_ready) == 200, 60, "the restarted API to be ready")

        children = psutil.Process(run.proc.pid).children(recursive=True)
        assert {c.pid for c in children} >= set(after.values())
        os.kill(run.proc.pid, signal.SIGINT)  # what Ctrl-C sends
        run.proc.wait(90)
        eventually(lambda: not [c for c in children if _alive(c)], 30, "every child to be gone")
    finally:
        _stop_everything(run)


def _stop_everything(run: Child) -> None:
    """Ctrl-C to supervisord, then SIGKILL for whatever is left: its children have process groups of their
    own, so a signal to supervisord's group alone would leave them running."""
    try:
        children = psutil.Process(run.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if run.proc.poll() is None:
        os.kill(run.proc.pid, signal.SIGINT)
        try:
            run.proc.wait(90)
        except subprocess.TimeoutExpired:
            run.kill()
    for child in children:
        if _alive(child):
            child.kill()
    run.stop()


def _all_running(config: Path, env: dict[str, str], names: set[str]) -> dict[str, int] | None:
    status = subprocess.run(
        supervisorctl_argv(config, "status"), env=env, capture_output=True, text=True, timeout=20
    ).stdout
    running = {name: int(pid) for name, pid in STATUS_LINE.findall(status)}
    return running if set(running) >= names else None


def _prefixed(run: Child, name: str, needle: str) -> bool:
    if run.proc.poll() is not None:
        raise RuntimeError(f"chatai up exited with {run.proc.returncode}:\n{run.log_text()[-4000:]}")
    line = re.compile(rf"^{re.escape(name)}\s+\| .*{re.escape(needle)}", re.MULTILINE)
    return line.search(run.log_text()) is not None


def _pings(node: str, env: dict[str, str]) -> bool:
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "inspect", "ping", "-d", node, "-t", "3"]
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, timeout=60).returncode == 0


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _get(url: str, auth: tuple[str, str] | None = None) -> int:
    try:
        return httpx.get(url, auth=auth, timeout=2).status_code
    except httpx.TransportError:
        return 0
