"""The deployment files validate with the tool that owns each format, where it installs here, and say what
the code expects: one worker per queue everywhere, metric names that exist, ports that match.

systemd units: ``systemd-analyze verify``; nginx: crossplane (nginx's grammar, directive contexts and
argument counts); docker-compose: the Compose Specification's JSON schema (check-jsonschema);
Prometheus rules and Grafana panels: every expression parsed by promql-parser; the rest: YAML/JSON
loads plus the structural checks below. ``promtool`` also runs when it is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import crossplane
import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

import api.ws_hub  # noqa: F401  (registers the WebSocket metrics)
import services.billing.reconcile  # noqa: F401  (registers the reconciliation counter)
from cli import console_build
from core import metrics
from core.queues import QUEUES
from core.settings import Settings
from tests.fixtures.processes import ROOT

DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent
WORKER = re.compile(r"workers\.run\s+(\w+)")


def _longest_task_seconds() -> int:
    settings = Settings(jwt_secret="x" * 40)
    return max(settings.document_time_limit_seconds + 30, settings.reply_time_limit_seconds + 60)


def _exported_sample_names() -> set[str]:
    families = list(REGISTRY.collect())
    families += metrics.BrokerQueueCollector("redis://127.0.0.1:1/0", QUEUES).describe()
    families += metrics.DatabasePoolCollector().describe()
    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",)}
    return {f.name + s for f in families for s in suffixes.get(f.type, ("",))}


def _check_promql(expr: str, known: set[str]) -> None:
    promql_parser.parse(expr)  # raises on a syntax error
    unknown = set(re.findall(r"\bchatai_[a-z0-9_]+", expr)) - known
    assert not unknown, f"metrics the code does not export: {sorted(unknown)} in {expr}"


# --- systemd ------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart binaries exist: point the /opt/chatai paths at this checkout.
    for unit in (DEPLOY / "systemd").glob("chatai*"):
        text = (
            unit.read_text()
            .replace("/opt/chatai/.venv/bin/", f"{VENV_BIN}/")
            .replace("/opt/chatai", str(ROOT))
        )
        (tmp_path / unit.name).write_text(text)
    (tmp_path / "chatai-worker@llm.service").symlink_to(tmp_path / "chatai-worker@.service")
    (tmp_path / "chatai-api@8000.service").symlink_to(tmp_path / "chatai-api@.service")
    units = [
        "chatai-worker@llm.service", "chatai-api@8000.service", "chatai-beat.service",
        "chatai-flower.service", "chatai-telegram-poller.service", "chatai.target",
    ]  # fmt: skip
    result = subprocess.run(
        ["systemd-analyze", "verify", *(f"./{u}" for u in units)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    # verify exits 0 on unknown keys or bad values: any message at all is a finding.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def _unit(name: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current[key] = f"{current[key]} {value}" if key in current else value
    return sections


def test_systemd_workers_outlast_the_longest_task_and_cover_every_queue() -> None:
    worker = _unit("chatai-worker@.service")["Service"]
    assert "workers.run ${CHATAI_QUEUE}" in worker["ExecStart"] and "CHATAI_QUEUE=%i" in worker["Environment"]
    assert worker["KillSignal"] == "SIGTERM"
    assert int(worker["TimeoutStopSec"]) > _longest_task_seconds()
    wanted = _unit("chatai.target")["Unit"]["Wants"].split()
    assert {
        w.removeprefix("chatai-worker@").removesuffix(".service") for w in wanted if "worker@" in w
    } == set(QUEUES)
    assert "--basic-auth" in _unit("chatai-flower.service")["Service"]["ExecStart"]


def test_systemd_api_outranks_workers_and_holds_its_sockets() -> None:
    api = _unit("chatai-api@.service")["Service"]
    # 10,000 WebSockets per process, each a file descriptor, plus its Redis and Postgres connections.
    assert int(api["LimitNOFILE"]) >= 20_000
    # Per-message deflate doubles a socket's memory (zlib state) and costs more CPU than the frames.
    assert "--ws-per-message-deflate false" in api["ExecStart"]
    # Workers saturating the cores must not starve the API: a larger CPU share and a higher priority
    # than every other unit.
    others = ["chatai-worker@.service", "chatai-beat.service", "chatai-flower.service",
              "chatai-telegram-poller.service"]  # fmt: skip
    for name in others:
        service = _unit(name)["Service"]
        assert int(api["CPUWeight"]) > int(service["CPUWeight"]), name
        assert int(api["Nice"]) < int(service["Nice"]), name


# --- nginx --------------------------------------------------------------------------------------------


def _nginx(tmp_path: Path, site: Path) -> dict[str, Any]:
    main = tmp_path / "nginx.conf"
    main.write_text(f"events {{}}\nhttp {{\n    include {site};\n}}\n")
    return crossplane.parse(str(main), check_ctx=True, check_args=True)


def _directives(block: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for d in block:
        out.append(d)
        out += _directives(d.get("block", []))
    return out


def test_nginx_config_parses_and_routes_what_the_api_needs(tmp_path: Path) -> None:
    site = DEPLOY / "nginx" / "chatai.conf"
    parsed = _nginx(tmp_path, site)
    assert parsed["status"] == "ok", parsed["errors"]
    found = _directives(parsed["config"][1]["parsed"])
    locations = {" ".join(d["args"]): d["block"] for d in found if d["directive"] == "location"}
    assert any(d["args"] == ["Upgrade", "$http_upgrade"] for d in locations["= /api/ws"])
    assert any("/api/telegram/webhook/" in key for key in locations)
    assert {"directive": "proxy_buffering", "args": ["off"]} in [
        {"directive": d["directive"], "args": d["args"]} for d in locations["^~ /v1/"]
    ], "/v1 streams server-sent events"
    assert any(d["directive"] == "ssl_certificate" for d in found)
    assert any(d["directive"] == "client_max_body_size" for d in found)
    assert any(d["directive"] == "listen" and "ssl" in d["args"] for d in found)

    # The console's static export: every route's index.html, hashed bundles cached for good, HTML never.
    console = {d["directive"]: d["args"] for d in locations["^~ /app/"]}
    assert console["alias"] == ["/opt/chatai/web/out/"] and "$uri/index.html" in console["try_files"]
    assert ["Cache-Control", "no-cache", "always"] in [
        d["args"] for d in locations["^~ /app/"] if d["directive"] == "add_header"
    ]
    static = [d["args"] for d in locations["^~ /app/_next/static/"] if d["directive"] == "add_header"]
    assert any(a[0] == "Cache-Control" and "immutable" in a[1] for a in static)
    # add_header in a location drops the server's: each location repeats HSTS.
    for key in ("^~ /app/", "^~ /app/_next/static/"):
        assert any(
            d["directive"] == "add_header" and d["args"][0] == "Strict-Transport-Security"
            for d in locations[key]
        ), key

    # The gateway's access log leaves out query strings, where a "?token=" would be written down.
    formats = {d["args"][0]: "".join(d["args"][1:]) for d in found if d["directive"] == "log_format"}
    [ws_log] = [d["args"] for d in locations["= /api/ws"] if d["directive"] == "access_log"]
    ws_format = formats[ws_log[1]]
    assert "$uri" in ws_format
    assert not re.search(r"\$(request|request_uri|args|query_string|arg_\w+)\b", ws_format), ws_format

    broken = tmp_path / "broken.conf"
    broken.write_text(site.read_text().replace("proxy_read_timeout 1h;", "proxy_read_timeout 1h", 1))
    assert _nginx(tmp_path, broken)["status"] == "failed", "the validator must catch a missing semicolon"


# --- Dockerfile ---------------------------------------------------------------------------------------


def test_image_builds_the_console_in_a_node_stage_and_serves_its_export() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    instructions = [line.split(None, 1) for line in lines if line.strip() and not line.startswith("#")]
    stages = [args for op, args in instructions if op == "FROM"]
    node_image, _, stage = stages[0].partition(" AS ")
    major = re.match(r"node:(\d+)", node_image)
    assert major and int(major.group(1)) >= console_build.MIN_NODE_MAJOR and stage == "console"
    runs = [args for op, args in instructions[: instructions.index(["FROM", stages[1]])] if op == "RUN"]
    assert runs == ["npm ci --no-audit --no-fund", "npm run build"]
    final = instructions[instructions.index(["FROM", stages[1]]) :]
    assert ["COPY", "--from=console /web/out ./web/out"] in final
    [env] = [args for op, args in final if op == "ENV"]
    assert "CHATAI_CONSOLE_DIR=/opt/chatai/web/out" in env.split()
    # The build context leaves out what the stage installs and builds itself.
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"web/node_modules", "web/.next", "web/out", ".venv"} <= set(ignored)


# --- docker compose -----------------------------------------------------------------------------------


def _compose_schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_compose_file_matches_the_compose_spec_and_runs_every_process(tmp_path: Path) -> None:
    path = DEPLOY / "docker-compose.yml"
    result = _compose_schema_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    services = yaml.safe_load(path.read_text())["services"]
    queues = {WORKER.search(" ".join(s.get("command", []))) for s in services.values()}
    assert {m.group(1) for m in queues if m} == set(QUEUES)
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in redis_command
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert {"api", "beat", "flower", "prometheus", "grafana", "migrate"} <= set(services)
    assert "--basic-auth" in " ".join(services["flower"]["command"])
    # Only the proxy's path into the network (its gateway) may set the client address.
    compose = yaml.safe_load(path.read_text())
    gateway = compose["networks"]["default"]["ipam"]["config"][0]["gateway"]
    api = services["api"]["command"]
    assert api[api.index("--forwarded-allow-ips") + 1] == f"${{CHATAI_FORWARDED_ALLOW_IPS:-{gateway}}}"
    for name, service in services.items():
        if name.startswith("worker-"):
            assert service["stop_grace_period"] == "16m" and _longest_task_seconds() < 16 * 60
            assert service["cpu_shares"] < services["api"]["cpu_shares"], name
    assert services["api"]["ulimits"]["nofile"]["soft"] >= 20_000
    assert api[api.index("--ws-per-message-deflate") + 1] == "false"
    assert services["flower"]["cpu_shares"] < services["api"]["cpu_shares"]

    # Every application process reaches Postgres through PgBouncer in transaction mode, with
    # server-side prepared statements off; migrations alone go straight to Postgres.
    bouncer = services["pgbouncer"]["environment"]
    assert bouncer["POOL_MODE"] == "transaction" and bouncer["DB_HOST"] == "postgres"
    app_env = compose["x-chatai"]["environment"]
    assert "@pgbouncer:" in app_env["DATABASE_URL"] and app_env["CHATAI_DB_PGBOUNCER"] == "1"
    assert "pgbouncer" in compose["x-chatai"]["depends_on"]
    migrate_env = services["migrate"]["environment"]
    assert "@postgres:5432/" in migrate_env["DATABASE_URL"] and migrate_env["CHATAI_DB_PGBOUNCER"] == "0"

    broken = tmp_path / "docker-compose.yml"
    broken.write_text(path.read_text().replace("stop_grace_period: 16m", "stop_grace_period: [16m]", 1))
    assert _compose_schema_check(broken).returncode != 0, "the schema must refuse a malformed field"


# --- Prometheus and Grafana ---------------------------------------------------------------------------

REQUIRED_ALERTS = {
    "ChatAIHighErrorRate", "ChatAIHighLatency", "ChatAIHostMemoryHigh", "ChatAIDatabasePoolSaturated",
    "ChatAIQueueBacklog", "ChatAIQueueOldMessage", "ChatAIWorkerNotConsuming", "ChatAIBalanceMismatch",
}  # fmt: skip


def test_alert_rules_parse_and_use_exported_metrics() -> None:
    known = _exported_sample_names()
    rules = [
        r
        for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    ]
    for rule in rules:
        _check_promql(rule["expr"], known)
        assert rule["annotations"]["summary"]
    alerts = {r["alert"]: r for r in rules}
    assert set(alerts) >= REQUIRED_ALERTS
    assert alerts["ChatAIHighErrorRate"]["for"] == "5m" and "> 0.01" in alerts["ChatAIHighErrorRate"]["expr"]
    assert "histogram_quantile(0.95" in alerts["ChatAIHighLatency"]["expr"]
    assert (
        "> 0.5" in alerts["ChatAIHighLatency"]["expr"] and "> 0.8" in alerts["ChatAIHostMemoryHigh"]["expr"]
    )


def test_scrape_config_covers_every_process_on_its_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert all((DEPLOY / "prometheus" / f).exists() for f in config["rule_files"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"])
    settings = Settings(jwt_secret="x" * 40)
    ports = {}
    for job in jobs.values():
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                ports[name] = sd["port"]
    assert ports["api"] == settings.port
    for offset, queue in enumerate(QUEUES, start=1):
        assert ports[f"worker-{queue}"] == settings.metrics_port + offset, queue
    assert ports["telegram-poller"] == settings.metrics_port + metrics.TELEGRAM_POLLER_PORT_OFFSET
    beat = jobs["chatai-beat"]["static_configs"][0]["targets"]
    assert beat == [f"beat:{settings.metrics_port + metrics.BEAT_PORT_OFFSET}"]
    assert jobs["flower"]["basic_auth"]["username"] == "ops"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_config_and_rules() -> None:
    # check config also checks the rule files it names.
    config = DEPLOY / "prometheus" / "prometheus.yml"
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboard_queries_exported_metrics() -> None:
    known = _exported_sample_names()
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "chatai.json").read_text())
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert len(panels) >= 12
    queried = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == uid and panel["targets"], panel["title"]
        for target in panel["targets"]:
            _check_promql(target["expr"], known)
            queried |= set(re.findall(r"\bchatai_[a-z0-9_]+", target["expr"]))
    for family in (
        "http_request_duration",
        "queue_depth",
        "tasks_total",
        "llm_time_to_first_token",
        "ws_conn",
    ):
        assert any(family in name for name in queried), family


# --- Kubernetes ---------------------------------------------------------------------------------------


def test_kubernetes_scales_each_queue_on_its_length() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "workers-keda.yaml").read_text()))
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    by_queue = {}
    for obj in scaled:
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "redis" and int(trigger["metadata"]["listLength"]) > 0
        queue = trigger["metadata"]["listName"]
        pod = target["spec"]["template"]["spec"]
        assert pod["containers"][0]["command"][-2:] == ["workers.run", queue]
        assert pod["terminationGracePeriodSeconds"] > _longest_task_seconds()
        assert obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]
        by_queue[queue] = obj
    assert set(by_queue) == set(QUEUES)
