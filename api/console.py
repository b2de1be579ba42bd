"""The console (the static export of ``web/``) served at ``/app/`` from the API's own origin, so it signs
in with the session cookies. Mounted only when the export exists; ``/app`` redirects to ``/app/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from core.settings import get_settings

CONSOLE_PATH = "/app"
DEFAULT_CONSOLE_DIR = Path(__file__).resolve().parents[1] / "web" / "out"


def console_dir() -> Path:
    return get_settings().console_dir or DEFAULT_CONSOLE_DIR


def mount_console(app: FastAPI) -> bool:
    """Serves the export if it was built; the API runs without it otherwise."""
    directory = console_dir()
    if not (directory / "index.html").is_file():
        return False
    # A mount is not a route: Starlette's slash redirect sends /app to /app/.
    app.mount(CONSOLE_PATH, StaticFiles(directory=directory, html=True), name="console")
    return True
