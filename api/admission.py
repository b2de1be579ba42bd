"""Admission control: refuse new chat work early, with ``503`` and ``Retry-After``, while this API process
or the ``llm`` queue behind it is overloaded, instead of letting the request wait for seconds.

The refusal happens before the request touches the database: it leaves nothing behind.
"""

from __future__ import annotations

from functools import lru_cache

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from core.backlog import QueueBacklog
from core.queues import TASKS, queue_for
from core.settings import get_settings
from services.errors import Overloaded

# Held open for a whole generation, like a socket: counting them would make an idle process look busy.
LONG_LIVED_PATHS = ("/v1/",)


class InFlightMiddleware:
    """Counts the short HTTP requests this process is serving (WebSockets and /v1 completions, which stay
    open for a whole reply, are not counted)."""

    in_flight = 0

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(LONG_LIVED_PATHS):
            await self.app(scope, receive, send)
            return
        InFlightMiddleware.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            InFlightMiddleware.in_flight -= 1


@lru_cache
def _backlog() -> QueueBacklog:
    settings = get_settings()
    return QueueBacklog(settings.broker_url, settings.admission_backlog_ttl_seconds)


async def admit_reply() -> None:
    """A dependency of the routes that queue a reply."""
    settings = get_settings()
    retry_after = settings.admission_retry_after_seconds
    limit = settings.admission_max_in_flight
    if limit and InFlightMiddleware.in_flight > limit:
        raise Overloaded(
            "This server is busy; retry shortly", retry_after, reason="api_busy", in_flight=limit
        )
    queued_limit = settings.admission_max_queued_replies
    if queued_limit:
        queue = queue_for(TASKS.generate_reply)
        queued = await _backlog().depth(queue)
        if queued >= queued_limit:
            raise Overloaded(
                "Too many replies are waiting to be generated; retry shortly",
                retry_after,
                reason="queue_full",
                queued=queued,
            )


def install_admission(app: FastAPI) -> None:
    app.add_middleware(InFlightMiddleware)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)}
        return error_response(exc.status, exc.code, exc.message, exc.details, headers, request.url.path)
