"""Build the web console (``web/``, a Next.js static export) for ``chatai up`` when its sources changed.

A stamp in ``web/`` records a hash of the sources and one of ``package-lock.json`` as of the last good
build: ``npm ci`` runs only when the lock changed (or ``node_modules`` is missing), ``npm run build`` only
when a source changed (or the export is missing). Without Node ≥ 18 the stack starts without the console
and says how to install it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MIN_NODE_MAJOR = 18
NODE_INSTALL_HINT = "apt-get install -y nodejs npm"
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
STAMP_NAME = ".console-build.json"
EXPORT_DIR = "out"
CONSOLE_PATH = "/app/"
# What npm, Next.js and tsc write into web/: never part of the sources, or every build would change them.
GENERATED_DIRS = frozenset(
    {"node_modules", ".next", EXPORT_DIR, "coverage", "test-results", "playwright-report"}
)
GENERATED_FILES = frozenset({STAMP_NAME, "next-env.d.ts"})
GENERATED_SUFFIXES = (".tsbuildinfo",)
OUTPUT_TAIL_LINES = 40

Echo = Callable[[str], object]


@dataclass(frozen=True)
class ConsoleBuild:
    """What happened: ``state`` is ``built``, ``current`` (nothing changed), ``absent`` (no ``web/``),
    ``no_node`` or ``failed``; ``export`` is the directory to serve, ``None`` when there is none."""

    state: str
    export: Path | None
    message: str


def node_major(env: dict[str, str] | None = None) -> int | None:
    """The major version of the ``node`` on PATH, ``None`` when there is none or it does not answer."""
    path = (env or os.environ).get("PATH")
    binary = shutil.which("node", path=path)
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = result.stdout.strip().lstrip("v")
    major = version.split(".", 1)[0]
    return int(major) if result.returncode == 0 and major.isdigit() else None


def _source_files(web: Path) -> Iterator[Path]:
    for entry in sorted(web.iterdir(), key=lambda p: p.name):
        if entry.is_dir():
            if entry.name not in GENERATED_DIRS and not entry.is_symlink():
                yield from _source_files(entry)
        elif entry.name not in GENERATED_FILES and not entry.name.endswith(GENERATED_SUFFIXES):
            yield entry


def sources_hash(web: Path) -> str:
    """A hash over every source file's path and content (generated directories left out)."""
    digest = hashlib.sha256()
    for path in _source_files(web):
        digest.update(path.relative_to(web).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def lock_hash(web: Path) -> str | None:
    lock = web / "package-lock.json"
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None


def read_stamp(web: Path) -> dict[str, str | None]:
    try:
        stamp = json.loads((web / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _npm(web: Path, args: list[str], env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm", path=(env or os.environ).get("PATH")) or "npm"
    return subprocess.run(
        [npm, *args], cwd=web, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _tail(output: str) -> str:
    return "\n".join(output.rstrip().splitlines()[-OUTPUT_TAIL_LINES:])


def ensure_console(
    web: Path, echo: Echo = print, env: dict[str, str] | None = None, build: bool = True
) -> ConsoleBuild:
    """Install (``npm ci``) when the lock changed and build when the sources changed since the last good
    build; ``build=False`` only installs. Never raises for a missing Node or a failed step: the API runs
    without the console, or with the previous export."""
    export = web / EXPORT_DIR
    if not (web / "package.json").exists():
        return ConsoleBuild("absent", None, f"no console sources in {web}")
    previous = export if (export / "index.html").exists() else None
    stamp = read_stamp(web)
    sources, lock = sources_hash(web), lock_hash(web)
    needs_install = lock != stamp.get("lock") or not (web / "node_modules").is_dir()
    needs_build = build and (previous is None or sources != stamp.get("sources"))
    # The lock is one of the sources: a build that is current needs no install either.
    needs_install = needs_install and (needs_build or not build)
    if not needs_install and not needs_build:
        return ConsoleBuild("current", previous, "up to date")

    problem = node_problem(env)
    if problem:
        return ConsoleBuild("no_node", previous, problem)

    if needs_install:
        echo("console: npm ci…")
        result = _npm(web, ["ci", "--no-audit", "--no-fund"], env)
        if result.returncode != 0:
            return _failed("npm ci", result, previous)
        # A project without dependencies gets no node_modules from npm; its absence means "install".
        (web / "node_modules").mkdir(exist_ok=True)
        _write_stamp(web, sources=stamp.get("sources"), lock=lock)
    if not needs_build:
        return ConsoleBuild("installed", previous, "dependencies installed")
    echo("console: npm run build…")
    result = _npm(web, ["run", "build"], env)
    if result.returncode != 0:
        return _failed("npm run build", result, previous)
    if not (export / "index.html").exists():
        return ConsoleBuild("failed", previous, f"npm run build wrote no {export}/index.html")
    _write_stamp(web, sources=sources, lock=lock)
    return ConsoleBuild("built", export, "built")


def node_problem(env: dict[str, str] | None = None) -> str | None:
    """Why the console cannot be built with the Node.js and npm on PATH, with how to fix it; ``None`` if
    it can."""
    major = node_major(env)
    has_npm = shutil.which("npm", path=(env or os.environ).get("PATH")) is not None
    if major is not None and major >= MIN_NODE_MAJOR and has_npm:
        return None
    found = "no Node.js" if major is None else f"Node.js {major}"
    return (
        f"the console needs Node.js >= {MIN_NODE_MAJOR} with npm, and {found}"
        f"{'' if has_npm else ' and no npm'} is on PATH; install them with:  {NODE_INSTALL_HINT}"
    )


def _failed(step: str, result: subprocess.CompletedProcess[str], previous: Path | None) -> ConsoleBuild:
    return ConsoleBuild("failed", previous, f"{step} failed:\n{_tail(result.stdout or '')}")


def _write_stamp(web: Path, sources: str | None, lock: str | None) -> None:
    (web / STAMP_NAME).write_text(json.dumps({"sources": sources, "lock": lock}) + "\n")


def prepare(web: Path, echo: Echo = print) -> ConsoleBuild:
    """``chatai up``'s step: build when needed, say what happened, and point the API at the export."""
    build = ensure_console(web, echo)
    if build.state in ("no_node", "failed"):
        consequence = "serving the previous build" if build.export else "the API starts without the console"
        echo(f"console: {build.message}\nconsole: {consequence}")
    elif build.state != "absent":
        echo(f"console: {build.message}")
    if build.export is not None:
        os.environ.setdefault("CHATAI_CONSOLE_DIR", str(build.export.absolute()))
    return build


def console_url(api_url: str, web: Path) -> str:
    """The banner's line for the console: its URL, or why it is not there."""
    if (web / EXPORT_DIR / "index.html").exists():
        return api_url.rstrip("/") + CONSOLE_PATH
    if not (web / "package.json").exists():
        return f"not built (no sources in {web})"
    return f"not built (Node.js >= {MIN_NODE_MAJOR}: {NODE_INSTALL_HINT})"


def main(argv: list[str] | None = None) -> int:
    """``python -m cli.console_build build|install``, for make: the same steps, but a missing Node or a
    failed step is an error (exit 1); no ``web/package.json`` yet is a skip."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args not in (["build"], ["install"]):
        print("usage: python -m cli.console_build build|install", file=sys.stderr)
        return 2
    result = ensure_console(WEB_DIR, echo=print, build=args == ["build"])
    if result.state == "absent":
        print(f"console: {result.message}; skipping")
        return 0
    if result.state in ("no_node", "failed"):
        print(
            f"console: {result.message.replace('   (the API starts without the console)', '')}",
            file=sys.stderr,
        )
        return 1
    print(f"console: {result.message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
