"""``make run``'s process list really starts: honcho runs the Procfile and every process comes up."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from core.queues import QUEUES
from tests.fixtures.processes import Child, eventually, free_port
from tests.fixtures.stack import base_env


def test_every_procfile_process_starts_and_stops(
    database_url: str, stack_redis_url: str, log_dir: Path
) -> None:
    api_port, flower_port = free_port(), free_port()
    env = base_env(database_url, stack_redis_url, log_dir)
    env.update(
        {
            "CHATAI_PORT": str(api_port),
            "CHATAI_FLOWER_PORT": str(flower_port),
            "CHATAI_FLOWER_BASIC_AUTH": "ops:secret",
            "CHATAI_LLM_CONCURRENCY": "20",
            "CHATAI_TELEGRAM_CONCURRENCY": "4",
            "PATH": f"{Path(sys.executable).parent}:{env['PATH']}",
        }
    )
    honcho = Child("honcho", [sys.executable, "-m", "honcho", "start", "-f", "deploy/Procfile"], env, log_dir)
    try:
        eventually(
            lambda: _get(f"http://127.0.0.1:{api_port}/health/ready") == 200, 90, "the API to be ready"
        )
        for queue in QUEUES:
            honcho.wait_for_log(f"{queue}-", timeout=90)
        eventually(lambda: honcho.log_text().count(" ready.") >= len(QUEUES), 90, "every worker to be ready")
        honcho.wait_for_log("beat: Starting", timeout=60)
        flower = f"http://127.0.0.1:{flower_port}/"
        eventually(lambda: _get(flower, auth=("ops", "secret")) == 200, 60, "Flower to answer")
        assert _get(flower) == 401, "Flower requires its credentials"
    finally:
        honcho.stop(timeout=30)
    assert honcho.proc.returncode is not None


def _get(url: str, auth: tuple[str, str] | None = None) -> int:
    try:
        return httpx.get(url, auth=auth, timeout=2).status_code
    except httpx.TransportError:
        return 0
