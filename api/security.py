"""App-wide protections: request body size limits, CORS for the dashboard, the 429 answer with
``Retry-After``."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.cookies import CSRF_HEADER
from api.errors import error_response
from core.settings import get_settings
from services.errors import RateLimited

# Room for the multipart framing around an uploaded file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


# The routes that take a file; only they get the upload limit. The limit follows the route, never the
# Content-Type a client declares, so no other route reads a body of upload size.
UPLOAD_ROUTES = (("POST", re.compile(r"/api/assistants/[^/]+/documents/?")),)


def body_limit(method: str, path: str) -> int:
    """The largest body a request to this route may send."""
    settings = get_settings()
    if any(method == m and pattern.fullmatch(path) for m, pattern in UPLOAD_ROUTES):
        return settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    return settings.max_body_bytes


class BodySizeLimitMiddleware:
    """413 ``too_large`` for a body over its limit: at once when Content-Length says so, else as soon as
    the bytes read pass it (a chunked body), so an oversized body is never held in memory whole."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = body_limit(scope["method"], scope["path"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            details = {"max_bytes": limit}
            response = error_response(413, "too_large", _too_large(limit), details, path=scope["path"])
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException, so the app's handler answers it in the error format.
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counting_receive, send)


def _too_large(limit: int) -> str:
    return f"The request body is larger than {limit} bytes"


def install_security(app: FastAPI) -> None:
    settings = get_settings()
    app.add_middleware(BodySizeLimitMiddleware)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", CSRF_HEADER, "Idempotency-Key", "X-Request-ID"],
            expose_headers=["Retry-After", "X-Request-ID"],
            max_age=600,
        )

    @app.exception_handler(RateLimited)
    async def _rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)}
        return error_response(exc.status, exc.code, exc.message, exc.details, headers, request.url.path)
