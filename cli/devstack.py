"""Bring the development stack up: database, Redis, migrations, then every process of deploy/Procfile
under supervisord, which restarts each one that exits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import typer

from cli import console_build, process_manager

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROCFILE = Path("deploy") / "Procfile"
DEFAULT_REDIS_HOSTS = {"127.0.0.1", "localhost", "::1"}
REDIS_SERVER_ARGS = ["--daemonize", "yes", "--port", "6379", "--save", "", "--appendonly", "no"]
REDIS_INSTALL_HINT = "apt-get install -y redis-server"


class StackError(Exception):
    """A precondition of the stack is not met; the message says what to do."""


def enter_project_root() -> None:
    """Run from the project root, so ``.data``, ``.env`` and the Procfile resolve the same for everyone.

    A relative ``CHATAI_DATA_DIR`` given by the caller is anchored where the caller stood first.
    """
    data_dir = os.environ.get("CHATAI_DATA_DIR")
    if data_dir:
        os.environ["CHATAI_DATA_DIR"] = str(Path(data_dir).expanduser().absolute())
    os.chdir(PROJECT_ROOT)


def resolve_database() -> str:
    """``DATABASE_URL``, or the embedded Postgres (started if needed); exported for the children."""
    from core.db import database_url

    try:
        url = database_url()
    except Exception as exc:  # any failure here means there is no database to run on
        raise StackError(f"cannot reach or start the database: {exc}") from exc
    os.environ["DATABASE_URL"] = url
    return url


def _redis_answers(url: str, timeout: float = 1.0) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _is_default_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "redis" and parts.hostname in DEFAULT_REDIS_HOSTS and (parts.port or 6379) == 6379


def ensure_redis(url: str, wait_seconds: float = 10.0) -> str:
    """Make sure Redis answers at ``url``; start the local redis-server only for the default local URL.

    Returns what happened ("running" or "started") for the banner.
    """
    if _redis_answers(url):
        return "running"
    if not _is_default_local(url):
        raise StackError(f"Redis does not answer at {url} (REDIS_URL); start it or point REDIS_URL elsewhere")
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(
            f"Redis does not answer at {url} and redis-server is not installed.\n"
            f"Install it with:  {REDIS_INSTALL_HINT}   (then run this again)"
        )
    subprocess.run([binary, *REDIS_SERVER_ARGS], check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if _redis_answers(url):
            return "started"
        time.sleep(0.1)
    raise StackError(f"started redis-server, but it does not answer at {url} after {wait_seconds:.0f}s")


def migrate(database_url: str | None = None) -> None:
    """``alembic upgrade head`` with the project's alembic.ini."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    if database_url:
        config.attributes["database_url"] = database_url
    command.upgrade(config, "head")


def banner(host: str, port: int, flower_port: int, flower_auth: str, database: str, redis: str) -> str:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    api = f"http://{shown_host}:{port}"
    user, _, password = flower_auth.partition(":")
    rows = [
        ("API", api),
        ("API docs", f"{api}/api/docs"),
        ("Console", console_build.console_url(api, PROJECT_ROOT / "web")),
        ("Flower", f"http://127.0.0.1:{flower_port}  (user {user!r}, password {password!r})"),
        ("Database", database),
        ("Redis", redis),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["", "ChatAI is starting:"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    lines += ["", "  talk to it:  .venv/bin/chatai chat      (Ctrl-C here stops everything)", ""]
    return "\n".join(lines)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def child_environment() -> dict[str, str]:
    """This environment, with the venv's bin first on PATH so the Procfile's commands are the venv's."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def up() -> None:
    """Everything ``chatai up`` does before starting supervisord, which it then waits for (and stops on
    Ctrl-C, SIGTERM or the terminal's hang-up)."""
    enter_project_root()
    from core.settings import get_settings

    settings = get_settings()
    from workers.checks import check_configured

    # A queue that tasks are routed to but no worker consumes would fill up silently.
    problems = check_configured(PROJECT_ROOT / PROCFILE)
    if problems:
        raise StackError("; ".join(problems))
    data_dir = settings.data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["CHATAI_DATA_DIR"] = str(data_dir)

    typer.echo("database: resolving (DATABASE_URL or the embedded Postgres)…")
    database = resolve_database()
    redis_state = ensure_redis(settings.redis_url)
    typer.echo(f"redis: {redis_state} at {_redacted(settings.redis_url)}")
    typer.echo("migrations: alembic upgrade head…")
    migrate(database)
    console_build.prepare(PROJECT_ROOT / "web", typer.echo)

    typer.echo(
        banner(
            settings.host,
            settings.port,
            settings.flower_port,
            settings.flower_basic_auth,
            _redacted(database),
            _redacted(settings.redis_url),
        )
    )
    sys.stdout.flush()
    config = process_manager.write_config(PROJECT_ROOT / PROCFILE, data_dir / "supervisor", PROJECT_ROOT)
    status = process_manager.run_in_foreground(process_manager.supervisord_argv(config), child_environment())
    raise SystemExit(status)
