from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from kombu import Connection
from sqlalchemy import text

from core.db import async_engine
from core.redis import async_redis
from core.settings import get_settings

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 2.0


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


async def _postgres() -> None:
    async with async_engine().connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis() -> None:
    await async_redis().ping()


async def _broker() -> None:
    url = get_settings().broker_url
    if url.startswith(("redis://", "rediss://")):
        client = aioredis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT)
        try:
            await client.ping()
        finally:
            await client.aclose()
        return

    def connect() -> None:
        with Connection(url, connect_timeout=CHECK_TIMEOUT) as conn:
            conn.ensure_connection(max_retries=1)

    await asyncio.to_thread(connect)


@router.get("/health/ready")
async def ready() -> JSONResponse:
    checks = {"postgres": _postgres, "redis": _redis, "broker": _broker}
    results: dict[str, Any] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
            results[name] = "ok"
        except Exception as exc:
            results[name] = f"failed: {type(exc).__name__}"
    ok = all(v == "ok" for v in results.values())
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": results}
    if not ok:
        body["error"] = {"code": "unavailable", "message": "A dependency is down", "details": results}
    return JSONResponse(body, status_code=200 if ok else 503)
