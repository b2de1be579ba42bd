"""The production nginx config serves the console's static export: every route's ``index.html``, the
404 page for a route it has no file for, hashed bundles cached for good and HTML never cached.

Runs the ``/app`` locations of deploy/nginx/chatai.conf, as written, in a real nginx on a free port."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crossplane
import httpx
import pytest

from tests.fixtures.processes import ROOT, Child, eventually, free_port

SITE = ROOT / "deploy" / "nginx" / "chatai.conf"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


def _console_locations(export: Path) -> list[dict[str, Any]]:
    parsed = crossplane.parse(str(SITE), single=True, check_ctx=False, check_args=True)
    assert parsed["status"] == "ok", parsed["errors"]
    servers = [d for d in parsed["config"][0]["parsed"] if d["directive"] == "server"]
    [tls] = [s for s in servers if any("ssl" in d["args"] for d in s["block"] if d["directive"] == "listen")]
    locations = [d for d in tls["block"] if d["directive"] == "location" and "/app" in " ".join(d["args"])]
    text = crossplane.build(locations)
    return [{"text": text.replace("/opt/chatai/web/out/", f"{export}/")}]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    for page, body in {
        "index.html": "dashboard",
        "assistants/index.html": "assistants",
        "404.html": "not found page",
        "_next/static/chunks/app-3f2a.js": "console.log(1)",
    }.items():
        (out / page).parent.mkdir(parents=True, exist_ok=True)
        (out / page).write_text(body)
    return out


@pytest.fixture
def nginx(tmp_path: Path, export: Path) -> Iterator[str]:
    assert NGINX is not None
    port = free_port()
    [locations] = _console_locations(export)
    user = "user root;\n" if os.geteuid() == 0 else ""  # the workers must read the test's own files
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"{user}daemon off;\npid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  access_log off;\n"
        f"  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
        f"  fastcgi_temp_path {tmp_path}/fastcgi;\n  uwsgi_temp_path {tmp_path}/uwsgi;\n"
        f"  scgi_temp_path {tmp_path}/scgi;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n{locations['text']}\n  }}\n}}\n"
    )
    check = subprocess.run([NGINX, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    child = Child("nginx", [NGINX, "-c", str(conf)], dict(os.environ), tmp_path / "logs")
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return httpx.get(f"{base}/app/", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(answers, 15, "nginx to serve /app/")
        yield base
    finally:
        child.stop()


def test_nginx_serves_the_export_with_its_routes_and_cache_rules(nginx: str) -> None:
    with httpx.Client(base_url=nginx, timeout=5) as http:
        r = http.get("/app")
        assert r.status_code == 301 and r.headers["location"].endswith("/app/")

        for path, body in [("/app/", "dashboard"), ("/app/assistants/", "assistants")]:
            r = http.get(path)
            assert (r.status_code, r.text) == (200, body), path
            assert r.headers["content-type"].startswith("text/html")
            assert r.headers["cache-control"] == "no-cache", "HTML names the current bundles"

        r = http.get("/app/no-such-page/")
        assert (r.status_code, r.text) == (404, "not found page")

        r = http.get("/app/_next/static/chunks/app-3f2a.js")
        assert r.status_code == 200 and r.text == "console.log(1)"
        assert "immutable" in r.headers["cache-control"] and "max-age=31536000" in r.headers["cache-control"]
        assert http.get("/app/_next/static/chunks/missing.js").status_code == 404
