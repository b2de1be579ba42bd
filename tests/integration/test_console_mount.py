"""The API serves the console's static export at /app/ when it exists, and runs without it otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.settings import get_settings
from tests.fixtures.routes import built_app


def _client(export: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("CHATAI_CONSOLE_DIR", str(export))
    get_settings.cache_clear()
    try:
        with built_app() as app:
            # Without the lifespan: serving files needs neither Redis nor Postgres.
            yield TestClient(app)
    finally:
        get_settings.cache_clear()


@pytest.fixture
def export(tmp_path: Path) -> Path:
    (tmp_path / "login").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>ChatAI console</title>", encoding="utf-8")
    (tmp_path / "login" / "index.html").write_text("<!doctype html><title>Sign in</title>", encoding="utf-8")
    (tmp_path / "404.html").write_text("<!doctype html><title>Not found</title>", encoding="utf-8")
    return tmp_path


@pytest.fixture
def client(export: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    yield from _client(export, monkeypatch)


def test_serves_the_export_index_at_app(client: TestClient) -> None:
    response = client.get("/app/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "ChatAI console" in response.text


def test_serves_each_page_under_its_trailing_slash_path(client: TestClient) -> None:
    assert "Sign in" in client.get("/app/login/").text


def test_redirects_app_without_the_slash(client: TestClient) -> None:
    response = client.get("/app", follow_redirects=False)
    assert response.status_code in (307, 308)
    assert response.headers["location"].endswith("/app/")


def test_an_unknown_console_path_is_the_export_404_page(client: TestClient) -> None:
    response = client.get("/app/nowhere/")
    assert response.status_code == 404
    assert "Not found" in response.text


def test_without_an_export_the_api_runs_and_app_is_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for client in _client(tmp_path / "missing", monkeypatch):
        assert client.get("/app/").status_code == 404
        assert client.get("/health/live").status_code == 200
