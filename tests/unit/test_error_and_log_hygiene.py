"""Errors never leak internals, and secrets never reach the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import ProgrammingError

from api.app import create_app
from core.logging import RedactingJsonFormatter, redact

LEAKY = "SELECT password_hash FROM users WHERE email = 'victim@example.com'"


@pytest.fixture
def app() -> Iterator[FastAPI]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    application = create_app()

    @application.get("/api/_boom")
    async def boom() -> None:
        raise RuntimeError(f"internal failure while running {LEAKY}")

    @application.get("/api/_bad_sql")
    async def bad_sql() -> None:
        raise ProgrammingError(LEAKY, {"email": "victim@example.com"}, Exception("syntax error"))

    yield application
    root.handlers[:], root.level = handlers, level


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


async def test_an_internal_error_is_a_generic_500(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/_boom")
    assert r.status_code == 500
    assert r.json() == {
        "error": {"code": "internal_error", "message": "Something went wrong on our side", "details": None}
    }
    for leak in ("SELECT", "password_hash", "Traceback", "RuntimeError", "victim"):
        assert leak not in r.text


async def test_a_database_error_shows_no_sql(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/_bad_sql")
    assert r.status_code >= 500 and r.json()["error"]["code"] in ("internal_error", "unavailable")
    for leak in ("SELECT", "password_hash", "victim", "syntax"):
        assert leak not in r.text


def test_log_lines_carry_no_secrets() -> None:
    token = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXBhcnQ"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingJsonFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("chatai.test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("request headers %s", {"authorization": f"Bearer {token}", "x-request-id": "r-1"})
        log.warning("calling https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1/getMe")
        log.warning("provider key sk-proj-abcdefghijklmnopqrstuvwx, stripe sk_live_abcdefgh12345678")
        log.warning("a client sent cak_Zx9-Qw8_Er7Ty6Ui5Op4As3Df2Gh1Jk0 as its key")
        log.warning('login body {"email": "a@example.com", "password": "hunter2hunter2"}')
        log.warning("refresh", extra={"refresh_token": "opaque-refresh-token-value"})
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    secrets = (token, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1", "abcdefghijklmnopqrstuvwx", "sk_live_abcdefgh")
    for secret in (
        *secrets,
        "hunter2hunter2",
        "opaque-refresh-token-value",
        "Zx9-Qw8_Er7Ty6Ui5Op4As3Df2Gh1Jk0",
    ):
        assert secret not in text, secret
    assert "r-1" in lines[0]["message"] and "a@example.com" in lines[4]["message"]


def test_redaction_keeps_ordinary_text() -> None:
    ordinary = "reply 5f0c completed in 2.1 s with 52 tokens; queue llm; status=completed"
    assert redact(ordinary) == ordinary
