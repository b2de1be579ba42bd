"""``GET /metrics``: Prometheus text for this API process (and the broker's queues it reads)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response

from core.metrics import exposition

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    # Collectors read Redis and the pools synchronously: keep that off the event loop.
    body, content_type = await asyncio.to_thread(exposition)
    return Response(body, media_type=content_type)
