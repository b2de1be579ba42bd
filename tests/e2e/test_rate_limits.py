"""Rate limits through the real API process, with small limits: 429 ``rate_limited`` with Retry-After.

uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1 (its default), so each test speaks from an address of
its own and their per-IP counts do not meet.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.fixtures.api import Account, new_dialog, signup
from tests.fixtures.stack import Stack, running_stack

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def limited_stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_RATE_LIMIT_LOGIN_PER_IP": "8/minute",
        "CHATAI_RATE_LIMIT_LOGIN_PER_EMAIL": "3/minute",
        "CHATAI_RATE_LIMIT_REGISTER_PER_IP": "4/minute",
        "CHATAI_RATE_LIMIT_REGISTER_PER_EMAIL": "2/minute",
        "CHATAI_RATE_LIMIT_MESSAGES_PER_USER": "5/minute",
        "CHATAI_RATE_LIMIT_UPLOADS_PER_USER": "2/minute",
        "CHATAI_RATE_LIMIT_SEARCHES_PER_USER": "3/minute",
        "CHATAI_MAX_CONCURRENT_GENERATIONS_PER_ASSISTANT": "2",
        "CHATAI_LOGIN_MAX_FAILURES": "1000",
    }
    # No llm worker: replies stay queued, so they hold their generation slots until cancelled.
    with running_stack(env, log_dir, workers=()) as system:  # type: ignore[arg-type]
        yield system


@pytest.fixture
async def http(limited_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    # Every test has its own client address.
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    async with httpx.AsyncClient(
        base_url=limited_stack.base_url, timeout=10, headers={"X-Forwarded-For": ip}
    ) as client:
        yield client


def assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= 60


async def test_login_is_limited_per_email_then_per_ip(http: httpx.AsyncClient) -> None:
    target = f"target-{uuid.uuid4().hex[:8]}@example.com"
    for _ in range(3):
        r = await http.post("/api/auth/login", json={"email": target, "password": "guess guess"})
        assert r.status_code == 401, r.text
    assert_limited(await http.post("/api/auth/login", json={"email": target, "password": "guess guess"}))
    # Other emails from the same address go on until the address's own limit (8, four used so far).
    for i in range(4):
        r = await http.post("/api/auth/login", json={"email": f"other{i}@example.com", "password": "x y z w"})
        assert r.status_code == 401, r.text
    assert_limited(await http.post("/api/auth/login", json={"email": "fresh@example.com", "password": "a"}))
    # Another address is not affected by this one's count.
    r = await http.post(
        "/api/auth/login",
        json={"email": "fresh@example.com", "password": "a"},
        headers={"X-Forwarded-For": "192.0.2.77"},
    )
    assert r.status_code == 401


async def test_register_is_limited_per_ip_and_per_email(http: httpx.AsyncClient) -> None:
    email = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    r = await http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201
    r = await http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 409
    assert_limited(await http.post("/api/auth/register", json={"email": email, "password": PASSWORD}))
    # The fourth registration from this address passes, the fifth is refused.
    r = await http.post("/api/auth/register", json={"email": f"x{uuid.uuid4().hex[:8]}@example.com",
                                                    "password": PASSWORD})  # fmt: skip
    assert r.status_code == 201, r.text
    assert_limited(
        await http.post(
            "/api/auth/register", json={"email": f"y{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
        )
    )


async def _user(http: httpx.AsyncClient) -> Account:
    # A fresh address per user: the per-IP registration limit is another test's subject.
    other_ip = {"X-Forwarded-For": f"198.51.100.{uuid.uuid4().int % 250}"}
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=10, headers=other_ip) as c:
        return await signup(c, "limited")


async def test_messages_are_limited_per_user(http: httpx.AsyncClient) -> None:
    user, other = await _user(http), await _user(http)
    # Three assistants: each may generate two replies at once, so only the per-user limit (5) is met.
    dialogs = [(await new_dialog(http, user))[1] for _ in range(3)]
    for i, dialog_id in enumerate([*dialogs[:2], *dialogs[:2], dialogs[2]]):
        r = await http.post(
            f"/api/dialogs/{dialog_id}/messages", json={"content": f"m{i}"}, headers=user.headers
        )
        assert r.status_code == 202, r.text
    url = f"/api/dialogs/{dialogs[2]}/messages"
    assert_limited(await http.post(url, json={"content": "one too many"}, headers=user.headers))
    r = await http.get(url, headers=user.headers)
    assert [m["content"] for m in r.json()["items"] if m["role"] == "user"] == ["m4"]
    _, other_dialog = await new_dialog(http, other)
    r = await http.post(
        f"/api/dialogs/{other_dialog}/messages", json={"content": "mine"}, headers=other.headers
    )
    assert r.status_code == 202, r.text


async def test_uploads_are_limited_per_user(http: httpx.AsyncClient) -> None:
    user = await _user(http)
    assistant_id, _ = await new_dialog(http, user)
    url = f"/api/assistants/{assistant_id}/documents"
    for i in range(2):
        r = await http.post(
            url, files={"file": (f"{i}.txt", b"some words", "text/plain")}, headers=user.headers
        )
        assert r.status_code == 202, r.text
    assert_limited(
        await http.post(url, files={"file": ("3.txt", b"more", "text/plain")}, headers=user.headers)
    )


async def test_searches_are_limited_per_user(http: httpx.AsyncClient) -> None:
    user, other = await _user(http), await _user(http)
    assistant_id, _ = await new_dialog(http, user)
    url = f"/api/assistants/{assistant_id}/search"
    for _ in range(3):  # no documents yet: answered without an embedding
        r = await http.post(url, json={"query": "refunds"}, headers=user.headers)
        assert r.status_code == 200 and r.json()["items"] == [], r.text
    assert_limited(await http.post(url, json={"query": "refunds"}, headers=user.headers))
    # The count is the user's own.
    r = await http.post(url, json={"query": "refunds"}, headers=other.headers)
    assert r.status_code == 404, r.text


async def test_concurrent_generations_are_capped_per_assistant(http: httpx.AsyncClient) -> None:
    user = await _user(http)
    other_user = await _user(http)
    _, dialog_id = await new_dialog(http, user)
    url = f"/api/dialogs/{dialog_id}/messages"
    replies = []
    for content in ("first", "second"):
        r = await http.post(url, json={"content": content}, headers=user.headers)
        assert r.status_code == 202, r.text
        replies.append(r.json()["reply"]["id"])
    r = await http.post(url, json={"content": "third"}, headers=user.headers)
    assert_limited(r)
    assert r.json()["error"]["details"]["limit"] == "concurrent_generations"
    # Another assistant has slots of its own.
    _, elsewhere = await new_dialog(http, other_user)
    r = await http.post(
        f"/api/dialogs/{elsewhere}/messages", json={"content": "hi"}, headers=other_user.headers
    )
    assert r.status_code == 202, r.text

    # A reply that ends gives its slot back (five messages of this user so far: the per-user limit is 5).
    r = await http.post(f"/api/messages/{replies[0]}/cancel", headers=user.headers)
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    r = await http.post(url, json={"content": "third"}, headers=user.headers)
    assert r.status_code == 202, r.text
    # ... and only that one: the assistant is full again.
    r = await http.post(url, json={"content": "fourth"}, headers=user.headers)
    assert_limited(r)
