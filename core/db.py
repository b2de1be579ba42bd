"""Database engines and session scopes (async for the API and workers' event loop, sync for tasks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

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


@lru_cache
def async_engine() -> AsyncEngine:
    settings = get_settings()
    return create_async_engine(
        database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_timeout=settings.db_pool_timeout_seconds,
    )


@lru_cache
def sync_engine() -> Engine:
    settings = get_settings()
    return create_engine(
        database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
    )


@lru_cache
def async_sessionmaker_() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(async_engine(), expire_on_commit=False)


@asynccontextmanager
async def async_session_scope() -> AsyncIterator[AsyncSession]:
    """A unit of work: commits on success, rolls back on error."""
    async with async_sessionmaker_()() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


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


def reset_engines() -> None:
    """Forget engines (after fork, or when settings change in tests)."""
    for cached in (async_engine, sync_engine, async_sessionmaker_, database_url):
        cached.cache_clear()
