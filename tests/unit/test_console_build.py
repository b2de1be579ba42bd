"""``chatai up`` builds the console only when ``web/`` changed, installs only when the lock changed, and
starts without it (saying how to install Node) where Node is missing or too old."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from cli import console_build
from cli.console_build import ensure_console

# A stand-in npm: logs each call, "ci" makes node_modules, "run build" writes the export (or fails when
# web/fail-build exists). Node answers the version it is told.
FAKE_NPM = """#!/bin/sh
echo "$*" >> "$PWD/npm-calls.log"
case "$1" in
  ci) mkdir -p node_modules ;;
  run) if [ -e fail-build ]; then echo "Type error: x is not a string"; exit 1; fi
       mkdir -p out/_next && echo '<html></html>' > out/index.html && echo 'generated' > next-env.d.ts ;;
esac
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _tools(tmp_path: Path, node_version: str | None, npm: bool = True) -> dict[str, str]:
    """An environment whose PATH holds only the given fake node and npm (and mkdir for the latter)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    mkdir = shutil.which("mkdir")
    assert mkdir is not None
    (bin_dir / "mkdir").symlink_to(mkdir)
    if node_version is not None:
        _executable(bin_dir / "node", f"#!/bin/sh\necho {node_version}\n")
    if npm:
        _executable(bin_dir / "npm", FAKE_NPM)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path)}


def _web(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    (web / "src" / "app").mkdir(parents=True)
    (web / "package.json").write_text('{"name": "console", "private": true}')
    (web / "package-lock.json").write_text('{"lockfileVersion": 3}')
    (web / "src" / "app" / "page.tsx").write_text("export default function Page() { return null }")
    return web


def _calls(web: Path) -> list[str]:
    log = web / "npm-calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def test_builds_once_then_only_when_sources_or_lock_change(tmp_path: Path) -> None:
    web, env = _web(tmp_path), _tools(tmp_path, "v20.11.1")

    first = ensure_console(web, echo=lambda _: None, env=env)
    assert (first.state, first.export) == ("built", web / "out")
    assert _calls(web) == ["ci --no-audit --no-fund", "run build"]

    # The build's own files (next-env.d.ts, out/, node_modules/) do not count as changes.
    assert ensure_console(web, echo=lambda _: None, env=env).state == "current"
    assert _calls(web) == []

    (web / "src" / "app" / "page.tsx").write_text("export default function Page() { return 'changed' }")
    assert ensure_console(web, echo=lambda _: None, env=env).state == "built"
    assert _calls(web) == ["run build"], "a source change rebuilds without reinstalling"

    (web / "package-lock.json").write_text('{"lockfileVersion": 3, "packages": {}}')
    assert ensure_console(web, echo=lambda _: None, env=env).state == "built"
    assert _calls(web) == ["ci --no-audit --no-fund", "run build"]

    shutil.rmtree(web / "out")
    assert ensure_console(web, echo=lambda _: None, env=env).state == "built"
    assert _calls(web) == ["run build"], "a deleted export is rebuilt"

    shutil.rmtree(web / "node_modules")
    assert ensure_console(web, echo=lambda _: None, env=env).state == "current"
    assert _calls(web) == [], "a current export needs no packages"
    assert ensure_console(web, echo=lambda _: None, env=env, build=False).state == "installed"
    assert _calls(web) == ["ci --no-audit --no-fund"], "make lint installs what typecheck and lint need"
    assert ensure_console(web, echo=lambda _: None, env=env, build=False).state == "current"
    assert _calls(web) == []


@pytest.mark.parametrize(
    ("node_version", "npm", "found"),
    [(None, False, "no Node.js"), ("v16.20.2", True, "Node.js 16"), ("v20.11.1", False, "Node.js 20")],
)
def test_without_a_usable_node_it_says_how_to_install_and_builds_nothing(
    tmp_path: Path, node_version: str | None, npm: bool, found: str
) -> None:
    web = _web(tmp_path)
    result = ensure_console(web, echo=lambda _: None, env=_tools(tmp_path, node_version, npm=npm))
    assert (result.state, result.export) == ("no_node", None)
    assert "apt-get install -y nodejs npm" in result.message and found in result.message
    assert not (web / "out").exists() and _calls(web) == []


def test_a_failed_build_keeps_the_previous_export_and_shows_the_error(tmp_path: Path) -> None:
    web, env = _web(tmp_path), _tools(tmp_path, "v18.19.0")
    assert ensure_console(web, echo=lambda _: None, env=env).state == "built"
    (web / "fail-build").write_text("")
    (web / "package-lock.json").write_text('{"lockfileVersion": 3, "packages": {}}')
    _calls(web)
    failed = ensure_console(web, echo=lambda _: None, env=env)
    assert (failed.state, failed.export) == ("failed", web / "out")
    assert "Type error: x is not a string" in failed.message
    # Still stale: the next start tries again rather than trusting the failed sources.
    assert _calls(web) == ["ci --no-audit --no-fund", "run build"]
    (web / "fail-build").unlink()
    assert ensure_console(web, echo=lambda _: None, env=env).state == "built"
    assert _calls(web) == ["run build"], "the install that succeeded is not repeated"


def test_no_web_directory_is_not_an_error(tmp_path: Path) -> None:
    result = ensure_console(tmp_path / "web", echo=lambda _: None, env=_tools(tmp_path, "v20.0.0"))
    assert (result.state, result.export) == ("absent", None)
    assert console_build.console_url("http://127.0.0.1:8000", tmp_path / "web").startswith("not built")


def test_prepare_points_the_api_at_the_export_and_the_banner_at_its_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = _web(tmp_path)
    monkeypatch.setenv("PATH", _tools(tmp_path, "v20.11.1")["PATH"])
    monkeypatch.delenv("CHATAI_CONSOLE_DIR", raising=False)
    said: list[str] = []
    assert console_build.prepare(web, said.append).state == "built"
    assert os.environ["CHATAI_CONSOLE_DIR"] == str(web / "out")
    assert "console: built" in said
    (web / "fail-build").write_text("")
    (web / "src" / "app" / "page.tsx").write_text("broken")
    said.clear()
    assert console_build.prepare(web, said.append).state == "failed"
    assert "console: serving the previous build" in said[-1]
    assert console_build.console_url("http://127.0.0.1:8000", web) == "http://127.0.0.1:8000/app/"


@pytest.mark.skipif(
    (console_build.node_major() or 0) < console_build.MIN_NODE_MAJOR, reason="Node.js >= 18 is not installed"
)
def test_real_npm_installs_and_builds_a_dependency_free_project(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    write_export = "fs.mkdirSync('out',{recursive:true});fs.writeFileSync('out/index.html','ok')"
    build = f"node -e \"const fs = require('fs'); {write_export}\""
    package = {"name": "console", "version": "0.0.0", "private": True, "scripts": {"build": build}}
    (web / "package.json").write_text(json.dumps(package))
    lock = {"name": "console", "version": "0.0.0", "lockfileVersion": 3, "requires": True,
            "packages": {"": {"name": "console", "version": "0.0.0"}}}  # fmt: skip
    (web / "package-lock.json").write_text(json.dumps(lock))
    env = {**os.environ, "npm_config_cache": str(tmp_path / "npm-cache"), "npm_config_offline": "true"}
    result = ensure_console(web, echo=lambda _: None, env=env)
    assert result.state == "built", result.message
    assert (web / "out" / "index.html").read_text() == "ok"
    assert ensure_console(web, echo=lambda _: None, env=env).state == "current"


def test_make_entry_point_skips_without_sources_and_fails_without_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(console_build, "WEB_DIR", tmp_path / "web")
    monkeypatch.setenv("PATH", _tools(tmp_path, None, npm=False)["PATH"])
    assert console_build.main(["install"]) == 0 and "skipping" in capsys.readouterr().out
    _web(tmp_path)
    assert console_build.main(["build"]) == 1
    assert "apt-get install -y nodejs npm" in capsys.readouterr().err
    assert console_build.main(["deploy"]) == 2
