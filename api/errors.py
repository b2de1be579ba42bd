"""The error format of docs/api.md: ``{"error": {"code", "message", "details"}}`` with the right status."""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.errors import ServiceError

log = logging.getLogger("chatai.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


# The OpenAI-compatible API answers errors in OpenAI's shape, so OpenAI's SDKs raise their own classes.
OPENAI_PATH_PREFIX = "/v1/"
_OPENAI_CODES = {400: "invalid_request_error", 401: "invalid_api_key", 422: "invalid_request_error"}
_OPENAI_TYPES = {402: "insufficient_quota", 429: "rate_limit_error"}


def openai_error(status: int, code: str, message: str) -> dict[str, Any]:
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"message": message, "type": kind, "code": _OPENAI_CODES.get(status, code)}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: Any = None, path: str = ""
) -> JSONResponse:
    """The error body for a request to ``path``: ours, or OpenAI's under ``/v1/``."""
    if path.startswith(OPENAI_PATH_PREFIX):
        body = {"error": openai_error(status, code, message)}
    else:
        body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
        for error in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, path=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details, path = _validation_details(exc), request.url.path
        if any(d["type"] == "json_invalid" for d in details):
            # Not JSON at all: a malformed request rather than a schema violation.
            return error_response(
                400, "bad_request", "The request body is not valid JSON", details, path=path
            )
        message = "The request is not valid"
        if path.startswith(OPENAI_PATH_PREFIX) and details:  # OpenAI's shape has no details: say it here
            first = details[0]
            message = f"{message}: {'.'.join(str(part) for part in first['loc'][1:])}: {first['msg']}"
        return error_response(422, "validation_error", message, details, path=path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = getattr(exc, "headers", None)
        return error_response(exc.status_code, code, message, headers=headers, path=request.url.path)

    async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "dependency unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
        )
        message = "A dependency is unavailable; the request did nothing"
        return error_response(503, "unavailable", message, path=request.url.path)

    # PoolTimeout: every database connection is busy; the client may retry, like any 503.
    for exc_type in (
        OperationalError, InterfaceError, PoolTimeout, redis.ConnectionError, redis.TimeoutError, BrokerError
    ):  # fmt: skip
        app.add_exception_handler(exc_type, _dependency_down)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # A lost connection is the database being away; any other database error is a bug of ours.
        if exc.connection_invalidated:
            return await _dependency_down(request, exc)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal_error", "Something went wrong on our side", path=request.url.path
        )
