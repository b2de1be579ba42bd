"""docs/api.md names every route of the app, and only routes of the app.

A route entry is the method and path template in one pair of backticks (`GET /api/dialogs/{dialog_id}`);
the WebSocket is written as `GET /api/ws`. The app's routes are its OpenAPI document's operations plus
the routes hidden from it (the WebSocket, the widget assets, /metrics).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.fixtures.routes import app_routes, built_app

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# Anything in backticks that starts like a route entry must be one, so a typo cannot hide a route.
ENTRY_LIKE = re.compile(r"`((?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\b[^`]*)`")
ENTRY = re.compile(r"(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_.{}/-]*)")

Route = tuple[str, str]


@pytest.fixture(scope="module")
def app() -> Iterator[FastAPI]:
    with built_app() as built:
        yield built


def doc_entries(text: str) -> tuple[set[Route], list[str]]:
    """The route entries of the document, and the backticked strings that look like one but are not."""
    entries: set[Route] = set()
    malformed = []
    for candidate in ENTRY_LIKE.findall(text):
        match = ENTRY.fullmatch(candidate)
        if match is None:
            malformed.append(candidate)
        else:
            entries.add((match[1], match[2]))
    return entries, malformed


def test_doc_entries_are_parsed_strictly() -> None:
    entries, malformed = doc_entries(
        "`GET /api/dialogs/{dialog_id}` and `POST /api/dialogs` `{assistant_id}`, "
        "`GET|PATCH /api/assistants/{assistant_id}`, `GET /api/analytics/usage?from=`"
    )
    assert entries == {("GET", "/api/dialogs/{dialog_id}"), ("POST", "/api/dialogs")}
    assert malformed == ["GET|PATCH /api/assistants/{assistant_id}", "GET /api/analytics/usage?from="]


def test_app_routes_include_those_hidden_from_openapi(app: FastAPI) -> None:
    routes = app_routes(app)
    assert {("GET", "/api/ws"), ("GET", "/widget.js"), ("GET", "/metrics")} <= routes
    assert ("POST", "/api/dialogs/{dialog_id}/messages") in routes
    assert len(routes) >= 50, sorted(routes)


def test_api_doc_lists_exactly_the_app_routes(app: FastAPI) -> None:
    entries, malformed = doc_entries(DOC.read_text(encoding="utf-8"))
    assert not malformed, f"write each route as `METHOD /path` alone in its backticks: {malformed}"
    routes = app_routes(app)
    missing = sorted(f"{method} {path}" for method, path in routes - entries)
    stale = sorted(f"{method} {path}" for method, path in entries - routes)
    assert not missing, f"routes docs/api.md does not document: {missing}"
    assert not stale, f"docs/api.md documents routes the app does not have: {stale}"
