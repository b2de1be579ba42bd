"""Browser sessions (token cookies, double-submit CSRF, CORS) and bad input (oversized, malformed, unknown
fields) through the real API process, each with the status and code of docs/api.md."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.fixtures.api import signup
from tests.fixtures.stack import Stack, running_stack

DASHBOARD = "https://dash.example.com"
MAX_BODY = 20_000
MAX_UPLOAD = 50_000


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_COOKIE_SECURE": "false",  # the test talks plain HTTP
        "CHATAI_CORS_ALLOW_ORIGINS": json.dumps([DASHBOARD]),
        "CHATAI_MAX_BODY_BYTES": str(MAX_BODY),
        "CHATAI_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
    }
    with running_stack(env, log_dir, workers=()) as system:  # type: ignore[arg-type]
        yield system


def _error(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def test_login_sets_cookies_and_state_changes_need_the_csrf_echo(
    http: httpx.AsyncClient, stack: Stack
) -> None:
    account = await signup(http, "browser")
    http.cookies.clear()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as browser:
        r = await browser.post("/api/auth/login", json={"email": account.email, "password": account.password})
        assert r.status_code == 200
        set_cookies = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
        assert set(set_cookies) == {"chatai_access", "chatai_refresh", "csrf_token"}
        assert "httponly" in set_cookies["chatai_access"] and "httponly" in set_cookies["chatai_refresh"]
        assert "httponly" not in set_cookies["csrf_token"]
        assert all("samesite=lax" in c for c in set_cookies.values())
        assert "path=/api/auth" in set_cookies["chatai_refresh"]
        csrf = browser.cookies["csrf_token"]

        # Reads need only the cookie; state changes also need X-CSRF-Token equal to the cookie.
        assert (await browser.get("/api/users/me")).status_code == 200
        r = await browser.post("/api/assistants", json={"name": "no csrf"})
        assert _error(r) == (403, "csrf_failed")
        r = await browser.post("/api/assistants", json={"name": "bad"}, headers={"X-CSRF-Token": "forged"})
        assert _error(r) == (403, "csrf_failed")
        r = await browser.post("/api/assistants", json={"name": "ok"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        # Bearer requests are exempt: a cross-site page cannot set the Authorization header.
        r = await browser.post("/api/assistants", json={"name": "bearer"}, headers=account.headers)
        assert r.status_code == 201

        # Refresh from the cookie, also guarded by the CSRF echo; it rotates the cookies.
        assert _error(await browser.post("/api/auth/refresh")) == (403, "csrf_failed")
        old_access = browser.cookies["chatai_access"]
        r = await browser.post("/api/auth/refresh", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        assert browser.cookies["chatai_access"] != old_access
        csrf = browser.cookies["csrf_token"]

        new_access = browser.cookies["chatai_access"]
        r = await browser.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
        assert "chatai_access" not in browser.cookies
    # The cookie's token is revoked, not just forgotten by the browser.
    r = await http.get("/api/users/me", headers={"Cookie": f"chatai_access={new_access}"})
    assert _error(r) == (401, "unauthorized")


async def test_cors_allows_the_dashboard_only(http: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-csrf-token"}
    r = await http.options("/api/assistants", headers={"Origin": DASHBOARD, **preflight})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == DASHBOARD
    assert r.headers["access-control-allow-credentials"] == "true"
    r = await http.options("/api/assistants", headers={"Origin": "https://evil.example.com", **preflight})
    assert "access-control-allow-origin" not in r.headers
    r = await http.get("/health/live", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in r.headers


async def test_oversized_and_malformed_bodies(http: httpx.AsyncClient) -> None:
    user = await signup(http, "inputs")
    big = {"name": "x", "system_prompt": "y" * (MAX_BODY + 10)}
    r = await http.post("/api/assistants", json=big, headers=user.headers)
    assert _error(r) == (413, "too_large")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "x", "system_prompt": "'
        for _ in range(10):
            yield b"z" * 5_000
        yield b'"}'

    # No Content-Length: counted while read.
    r = await http.post(
        "/api/assistants", content=chunks(), headers={**user.headers, "Content-Type": "application/json"}
    )
    assert _error(r) == (413, "too_large")

    r = await http.post("/api/assistants", json={"name": "ok"}, headers=user.headers)
    assistant_id = r.json()["id"]
    url = f"/api/assistants/{assistant_id}/documents"
    r = await http.post(
        url, files={"file": ("a.txt", b"w " * MAX_UPLOAD, "text/plain")}, headers=user.headers
    )
    assert _error(r) == (413, "too_large")
    # A file under its own limit passes although it is over the JSON body limit.
    r = await http.post(url, files={"file": ("b.txt", b"w " * 15_000, "text/plain")}, headers=user.headers)
    assert r.status_code == 202, r.text
    # Any other route keeps the small limit, whatever Content-Type the client declares.
    multipart = {"file": ("c.txt", b"w " * 15_000, "text/plain")}
    for other in ("/api/assistants", f"/api/assistants/{assistant_id}/search", "/api/auth/login"):
        r = await http.post(other, files=multipart, headers=user.headers)
        assert _error(r) == (413, "too_large"), (other, r.text)

    r = await http.post(
        "/api/assistants", content=b'{"name": ', headers={**user.headers, "Content-Type": "application/json"}
    )
    assert _error(r) == (400, "bad_request")
    for body in ({"name": "x", "owner_id": user.user_id}, {"name": "x", "public_key": "pk_mine"}):
        r = await http.post("/api/assistants", json=body, headers=user.headers)
        assert _error(r) == (422, "validation_error"), body
    r = await http.patch(f"/api/assistants/{assistant_id}", json={"id": "x"}, headers=user.headers)
    assert _error(r) == (422, "validation_error")
    # Prompt text is stored and returned as data, quotes and markup included.
    hostile = "'; DROP TABLE users; -- <script>alert(1)</script> $(rm -rf /)"
    r = await http.post(
        "/api/assistants", json={"name": hostile, "system_prompt": hostile}, headers=user.headers
    )
    assert r.status_code == 201 and r.json()["system_prompt"] == hostile
    r = await http.get(f"/api/assistants/{r.json()['id']}", headers=user.headers)
    assert r.json()["name"] == hostile
