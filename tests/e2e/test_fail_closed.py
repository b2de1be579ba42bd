"""Defaults that fail closed, checked on real processes and sockets: the API will not serve other
machines with the development secret when no environment was chosen, and a process's /metrics endpoint
listens on loopback unless configured otherwise."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry

from core import metrics
from core.settings import get_settings
from tests.fixtures.processes import Child, eventually, free_port, python_argv


def _api_argv(host: str, port: int) -> list[str]:
    return python_argv(
        "-m", "uvicorn", "--factory", "api.app:create_app", "--host", host, "--port", str(port),
        "--log-level", "warning",
    )  # fmt: skip


def test_the_api_refuses_a_public_address_with_the_development_secret_and_no_env(
    stack_env: dict[str, str], log_dir: Path
) -> None:
    env = {k: v for k, v in stack_env.items() if k not in ("CHATAI_ENV", "CHATAI_JWT_SECRET")}
    api = Child("api-exposed", _api_argv("0.0.0.0", free_port()), env, log_dir)
    try:
        eventually(lambda: api.proc.poll() is not None, 60, "the API to refuse to start")
    finally:
        api.stop()
    assert api.proc.returncode != 0
    assert "CHATAI_ENV unset" in api.log_text()


def _listening_addresses(port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


@pytest.fixture
def metrics_host(monkeypatch: pytest.MonkeyPatch) -> object:
    def configure(host: str | None) -> None:
        if host is None:
            monkeypatch.delenv("CHATAI_METRICS_HOST", raising=False)
        else:
            monkeypatch.setenv("CHATAI_METRICS_HOST", host)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def test_process_metrics_listen_on_loopback_unless_configured(metrics_host: object) -> None:
    metrics_host(None)  # type: ignore[operator]
    port = free_port()
    assert metrics.serve(port, CollectorRegistry(), db_pools=False)
    assert _listening_addresses(port) == {"127.0.0.1"}

    metrics_host("0.0.0.0")  # type: ignore[operator]
    port = free_port()
    assert metrics.serve(port, CollectorRegistry(), db_pools=False)
    assert _listening_addresses(port) == {"0.0.0.0"}
