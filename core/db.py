"""Database engines and session scopes (async for the API and workers' event loop, sync for tasks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from core.loop_local import LoopLocal
from core.settings import get_settings

EMBEDDED_DATABASE = "chatai"


@lru_cache
def database_url() -> str:
    """The SQLAlchemy URL: ``DATABASE_URL`` if set, else the embedded server (started on demand)."""
    settings = get_settings()
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    from core.embedded_db import ensure_server, sqlalchemy_url

    libpq = ensure_server(settings.data_dir / "postgres")
    _create_database_if_missing(libpq, EMBEDDED_DATABASE)
    return sqlalchemy_url(libpq, EMBEDDED_DATABASE)


def _create_database_if_missing(libpq_uri: str, name: str) -> None:
    with psycopg.connect(libpq_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def connect_options() -> dict[str, object]:
    """psycopg connection options every pool of this process uses.

    Behind PgBouncer in transaction mode, psycopg must not prepare statements on the server
    (``prepare_threshold=None``): a statement prepared in one transaction is gone, or belongs to another
    client, when the next transaction lands on a different server connection."""
    return {"prepare_threshold": None} if get_settings().db_pgbouncer else {}


@lru_cache
def async_engine() -> AsyncEngine:
    settings = get_settings()
    return create_async_engine(
        database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args=connect_options(),
    )


@lru_cache
def sync_engine() -> Engine:
    settings = get_settings()
    return create_engine(
        database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        connect_args=connect_options(),
    )


@lru_cache
def async_sessionmaker_() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(async_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    factory = sessionmaker(sync_engine(), expire_on_commit=False)
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def libpq_url() -> str:
    """The database URL as libpq reads it, for code that talks to psycopg directly."""
    return to_libpq(database_url())


def to_libpq(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://…``) as libpq reads it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


RawPool = AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]


async def _open_raw_pool() -> RawPool:
    settings = get_settings()
    # The pool's type parameter only tells the checker what row_factory gives; the class is the same.
    pool: RawPool = AsyncConnectionPool(
        libpq_url(), min_size=1, max_size=settings.db_pool_size, timeout=settings.db_pool_timeout_seconds,
        kwargs={"row_factory": dict_row, **connect_options()}, open=False,
    )  # fmt: skip
    await pool.open()
    return pool


# One pool per loop (a pool is bound to its loop); a pool that failed to open is opened anew.
_raw_pools: LoopLocal[asyncio.Future[RawPool]] = LoopLocal(lambda: asyncio.ensure_future(_open_raw_pool()))


def open_raw_pools() -> list[RawPool]:
    """The plain psycopg pools this process has opened (for metrics; opens none)."""
    return [f.result() for f in _raw_pools.values() if f.done() and f.exception() is None]


@asynccontextmanager
async def raw_connection() -> AsyncIterator[psycopg.AsyncConnection[DictRow]]:
    """A transaction on a plain psycopg connection of the running loop's pool (commits on success).

    For the few statements every reply runs: with hundreds of generations in one process, the ORM's
    per-statement CPU was the largest share of a reply's cost."""
    opening = _raw_pools.get()
    if opening.done() and opening.exception() is not None:
        _raw_pools.discard()
        opening = _raw_pools.get()
    pool = await opening
    async with pool.connection() as conn:
        yield conn


def reset_engines() -> None:
    """Forget engines (after fork, or when settings change in tests)."""
    for cached in (async_engine, sync_engine, async_sessionmaker_, database_url):
        cached.cache_clear()
    _raw_pools.clear()
