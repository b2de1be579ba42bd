"""App-wide protections: the 429 answer with ``Retry-After``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import error_response
from services.errors import RateLimited


def install_security(app: FastAPI) -> None:
    @app.exception_handler(RateLimited)
    async def _rate_limited(_: Request, exc: RateLimited) -> JSONResponse:
        return error_response(
            exc.status, exc.code, exc.message, exc.details, headers={"Retry-After": str(exc.retry_after)}
        )
