"""Operations through the real processes: metrics on the API and on the llm worker change with a chat turn,
one request id follows the turn through the API's log, the worker's log and the events, and readiness
follows Redis going away and coming back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from core.events import EventBus, dialog_topic
from tests.e2e.test_dependencies_down import RedisServer
from tests.fixtures.api import WsClient, new_dialog, poll_reply, signup
from tests.fixtures.processes import ROOT, Child, eventually, free_port, python_argv
from tests.fixtures.stack import FakeLLM, Stack, base_env, running_stack

WORKER_METRICS_PORT = free_port()

Samples = list[tuple[str, dict[str, str], float]]


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Path) -> Iterator[Stack]:
    """API + an llm worker serving its metrics on a port of its own."""
    env = {**stack_env, **fake_llm.env, "CHATAI_WORKER_METRICS_PORT": str(WORKER_METRICS_PORT)}
    with running_stack(env, log_dir) as system:
        yield system


def promtool_accepts(url: str) -> None:
    """``promtool check metrics`` on an endpoint's text, where promtool is installed."""
    if shutil.which("promtool") is None:
        return
    text = httpx.get(url, timeout=10).text
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def scrape(url: str) -> Samples:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    # The client's own parser refuses malformed exposition text.
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    ]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


def names(samples: Samples) -> set[str]:
    return {n for n, _, _ in samples}


async def test_metrics_change_with_a_chat_turn(client: httpx.AsyncClient, stack: Stack) -> None:
    api_url, worker_url = f"{stack.base_url}/metrics", f"http://127.0.0.1:{WORKER_METRICS_PORT}/metrics"
    user = await signup(client, "metrics")
    _, dialog_id = await new_dialog(client, user)
    api_before, worker_before = scrape(api_url), scrape(worker_url)

    async with WsClient(stack.ws_url, user.access_token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        r = await client.post(
            f"/api/dialogs/{dialog_id}/messages", json={"content": "hi [[tokens:12]]"}, headers=user.headers
        )
        assert r.status_code == 202, r.text
        reply_id = r.json()["reply"]["id"]
        await ws.until("reply.completed", reply_id)
    assert (await poll_reply(client, user, reply_id))["status"] == "completed"

    api_after = scrape(api_url)
    route = {"route": "/api/dialogs/{dialog_id}/messages", "method": "POST", "status": "202"}
    count = "chatai_http_request_duration_seconds_count"
    assert value(api_after, count, **route) == value(api_before, count, **route) + 1
    assert not any(ls.get("route", "").count("-") >= 4 for _, ls, _ in api_after), "raw ids in route labels"
    assert value(api_after, "chatai_ws_events_delivered_total") > value(
        api_before, "chatai_ws_events_delivered_total"
    )
    assert value(api_after, "chatai_event_bus_lag_seconds_count") > value(
        api_before, "chatai_event_bus_lag_seconds_count"
    )
    assert {
        "chatai_queue_depth",
        "chatai_queue_oldest_message_age_seconds",
        "chatai_db_pool_in_use",
    } <= names(api_after)
    assert value(api_after, "chatai_broker_up") == 1
    assert ("chatai_queue_depth", {"queue": "llm"}) in [(n, ls) for n, ls, _ in api_after]

    task = {"queue": "llm", "task": "chatai.llm.generate_reply"}

    def worker_counted() -> Samples | None:
        # The task's postrun signal runs just after the reply's events: give it a moment.
        after = scrape(worker_url)
        done = value(after, "chatai_tasks_total", outcome="success", **task)
        return after if done > value(worker_before, "chatai_tasks_total", outcome="success", **task) else None

    worker_after: Samples = eventually(worker_counted, 10, "the worker to count the task")  # type: ignore[assignment]
    for metric in ("chatai_task_duration_seconds_count", "chatai_task_queue_wait_seconds_count"):
        assert value(worker_after, metric, **task) == value(worker_before, metric, **task) + 1, metric
    ttft = "chatai_llm_time_to_first_token_seconds_count"
    assert value(worker_after, ttft) == value(worker_before, ttft) + 1
    tokens = "chatai_llm_tokens_total"
    assert (
        value(worker_after, tokens, kind="completion") - value(worker_before, tokens, kind="completion") == 12
    )
    assert value(worker_after, tokens, kind="prompt") > value(worker_before, tokens, kind="prompt")
    assert value(worker_after, "chatai_db_pool_in_use", pool="psycopg") >= 0
    assert value(worker_after, "chatai_db_pool_max", pool="psycopg") > 0
    promtool_accepts(api_url)
    promtool_accepts(worker_url)


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return out


async def test_one_request_id_follows_a_turn(
    client: httpx.AsyncClient, stack: Stack, stack_redis_url: str
) -> None:
    user = await signup(client, "trace")
    _, dialog_id = await new_dialog(client, user)
    request_id = f"trace-{uuid.uuid4().hex}"
    r = await client.post(
        f"/api/dialogs/{dialog_id}/messages",
        json={"content": "follow me"},
        headers={**user.headers, "X-Request-ID": request_id},
    )
    assert r.status_code == 202 and r.headers["x-request-id"] == request_id
    assert (await poll_reply(client, user, r.json()["reply"]["id"]))["status"] == "completed"

    api, worker = stack.children[0], stack.children[1]
    sent = [e for e in json_lines(api.log_text()) if e.get("request_id") == request_id]
    assert [e["message"] for e in sent] == ["task sent"], sent
    task_id = sent[0]["sent_task_id"]

    def worker_lines() -> list[dict[str, Any]]:
        return [e for e in json_lines(worker.log_text()) if e.get("request_id") == request_id]

    lines: list[dict[str, Any]] = eventually(worker_lines, 10, "the worker to log the request id")  # type: ignore[assignment]
    assert all(e["task_id"] == task_id and e["process_kind"] == "worker" for e in lines), lines

    events = EventBus(sync_client=redis.Redis.from_url(stack_redis_url)).replay(dialog_topic(dialog_id))
    started = [e for e in events if e["type"] == "reply.started"]
    assert [e["data"]["request_id"] for e in started] == [request_id]


def test_readiness_follows_redis(database_url: str, log_dir: Path) -> None:
    for old in (log_dir / "redis-outage").glob("*.log"):
        old.unlink()
    server = RedisServer()
    server.start()
    system = Stack(base_env(database_url, server.url, log_dir / "redis-outage"), log_dir / "redis-outage")
    try:
        system.start_api()
        ready = f"{system.base_url}/health/ready"
        assert httpx.get(ready, timeout=10).status_code == 200
        server.stop()
        r = httpx.get(ready, timeout=10)
        assert r.status_code == 503, r.text
        checks = r.json()["checks"]
        assert checks["postgres"] == "ok" and checks["redis"] != "ok" and checks["broker"] != "ok"
        assert r.json()["error"]["code"] == "unavailable"
        server.start()
        eventually(lambda: httpx.get(ready, timeout=10).status_code == 200, 30, "readiness to return")
    finally:
        system.stop()
        server.stop()


def test_liveness_check_sees_the_consuming_worker(stack: Stack) -> None:
    def check(*args: str) -> subprocess.CompletedProcess[str]:
        argv = python_argv("-m", "workers.checks", "alive", "--timeout", "3", *args)
        return subprocess.run(argv, env=stack.env, capture_output=True, text=True, timeout=60, cwd=ROOT)

    assert check("--queue", "llm").returncode == 0
    missing = check("--queue", "llm", "--queue", "billing")
    assert missing.returncode == 1 and "'billing'" in missing.stderr and "'llm'" not in missing.stderr
    elsewhere = check("--queue", "llm", "--host", "no-such-host")
    assert elsewhere.returncode == 1


def test_prefork_worker_serves_its_childrens_metrics(stack_env: dict[str, str], log_dir: Path) -> None:
    port = free_port()
    for old in (log_dir / "prefork").glob("*.log"):  # waits read the log: no earlier run's lines
        old.unlink()
    system = Stack({**stack_env, "CHATAI_WORKER_METRICS_PORT": str(port)}, log_dir / "prefork")
    try:
        # Through workers.run, as every deployment starts workers: it sets up the multiprocess mode.
        argv = python_argv("-m", "workers.run", "embeddings", "-l", "INFO")
        worker = system._spawn("worker-embeddings", argv)
        worker.wait_for_log(" ready.", timeout=60)
        # The reaper of silent documents runs in a pool child; the parent's endpoint must show it.
        code = "from workers.app import celery_app; celery_app.send_task('chatai.embeddings.reap_documents')"
        subprocess.run(python_argv("-c", code), env=system.env, cwd=ROOT, check=True, timeout=60)
        labels = {"queue": "embeddings", "task": "chatai.embeddings.reap_documents", "outcome": "success"}
        url = f"http://127.0.0.1:{port}/metrics"
        eventually(lambda: value(scrape(url), "chatai_tasks_total", **labels) == 1, 60, "the child's count")
        mmap_files = list((Path(stack_env["CHATAI_DATA_DIR"]) / "prometheus").glob("embeddings-*/*.db"))
        assert mmap_files, "prefork metrics are not in multiprocess mode"
        promtool_accepts(url)
    finally:
        system.stop()


def test_flower_from_the_procfile_asks_for_credentials(stack: Stack) -> None:
    procfile = (ROOT / "deploy" / "Procfile").read_text().splitlines()
    line = next(ln for ln in procfile if ln.startswith("flower:"))
    port = free_port()
    env = {
        **stack.env,
        "CHATAI_FLOWER_PORT": str(port),
        "CHATAI_FLOWER_BASIC_AUTH": "ops:flower-test-password",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    flower = Child("flower", ["bash", "-c", f"exec {line.partition(':')[2].strip()}"], env, stack.log_dir)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if flower.proc.poll() is not None:
            raise RuntimeError(f"flower exited:\n{flower.log_text()[-3000:]}")
        try:
            return httpx.get(f"{base}/healthcheck", timeout=2).status_code in (200, 401)
        except httpx.TransportError:
            return False

    try:
        eventually(answers, 60, "Flower to answer")
        assert httpx.get(f"{base}/workers", timeout=10).status_code == 401
        auth = ("ops", "flower-test-password")
        assert httpx.get(f"{base}/workers", auth=auth, timeout=10).status_code == 200
        assert httpx.get(f"{base}/workers", auth=("ops", "wrong"), timeout=10).status_code == 401
        r = httpx.get(f"{base}/metrics", auth=auth, timeout=10)
        assert r.status_code == 200
        assert any(f.name.startswith("flower_") for f in text_string_to_metric_families(r.text))
    finally:
        flower.stop()
