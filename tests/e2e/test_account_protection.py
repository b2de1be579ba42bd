"""Account protection through the real API: lockout after failed logins (423), the audit log, password
rules, and the same answer and timing for an unknown email and a wrong password."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.api import signup
from tests.fixtures.database import sql
from tests.fixtures.processes import eventually_async
from tests.fixtures.stack import Stack, running_stack

LOCKOUT_SECONDS = 8  # outlasts the slow logins between a lock and its check on a busy machine
EMAIL_WIDE_FAILURES = 4


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_LOGIN_MAX_FAILURES": "3",
        "CHATAI_LOGIN_LOCKOUT_SECONDS": str(LOCKOUT_SECONDS),
        "CHATAI_LOGIN_DELAY_AFTER_FAILURES": str(EMAIL_WIDE_FAILURES),
        "CHATAI_LOGIN_DELAY_BASE_SECONDS": "2",
        "CHATAI_LOGIN_DELAY_MAX_SECONDS": "4",
    }
    with running_stack(env, log_dir, workers=()) as system:  # type: ignore[arg-type]
        yield system


async def _login(
    http: httpx.AsyncClient, email: str, password: str, ip: str = "203.0.113.9"
) -> httpx.Response:
    return await http.post(
        "/api/auth/login", json={"email": email, "password": password}, headers={"X-Forwarded-For": ip}
    )


async def test_failed_logins_lock_the_account_and_are_audited(
    http: httpx.AsyncClient, database_url: str
) -> None:
    account = await signup(http, "locked")
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    answers = {}
    for email in (account.email, unknown):
        answers[email] = [await _login(http, email, "wrong password!") for _ in range(3)]
        assert [r.status_code for r in answers[email]] == [401, 401, 423]
        assert answers[email][2].json()["error"]["code"] == "account_locked"
    # An unknown email and a real one give the very same answers, lock included.
    assert [r.json() for r in answers[account.email]] == [r.json() for r in answers[unknown]]

    # Locked: even the right password is refused until the lock ends.
    r = await _login(http, account.email, account.password)
    assert r.status_code == 423 and r.json()["error"]["code"] == "account_locked"

    rows = sql(
        database_url,
        "SELECT action, actor_id::text, ip FROM audit_events WHERE subject = %s ORDER BY created_at",
        account.email,
    )
    assert [a for a, _, _ in rows] == [
        "login_failed", "login_failed", "login_failed", "account_locked", "login_refused_locked"
    ]  # fmt: skip
    assert {actor for _, actor, _ in rows[:4]} == {account.user_id}
    assert {ip for _, _, ip in rows} == {"203.0.113.9"}

    async def unlocked() -> httpx.Response | None:
        r = await _login(http, account.email, account.password)
        return r if r.status_code != 423 else None

    r = await eventually_async(unlocked, LOCKOUT_SECONDS + 10, "the lockout to end", interval=0.2)
    assert r.status_code == 200, r.text
    # A successful login clears the count: two more failures do not lock.
    assert [(await _login(http, account.email, "nope nope")).status_code for _ in range(2)] == [401, 401]
    assert (await _login(http, account.email, account.password)).status_code == 200


async def test_guesses_from_many_addresses_slow_an_email_down_but_never_lock_its_owner_out(
    http: httpx.AsyncClient,
) -> None:
    account = await signup(http, "targeted")
    home = "198.51.100.20"
    assert (await _login(http, account.email, account.password, home)).status_code == 200
    # Guesses spread over addresses, each far below its own lock.
    answers = [await _login(http, account.email, "a wrong guess", f"192.0.2.{i}") for i in range(1, 7)]
    assert [r.status_code for r in answers] == [401] * EMAIL_WIDE_FAILURES + [429, 429]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in answers[EMAIL_WIDE_FAILURES:])
    assert answers[-1].json()["error"]["code"] == "rate_limited"

    # The owner, from an address the account has logged in from, gets in at once.
    assert (await _login(http, account.email, account.password, home)).status_code == 200
    # A new address is asked to wait, not refused for good: after the delay the right password works.
    r = await _login(http, account.email, account.password, "203.0.113.50")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, r.text

    async def after_the_delay() -> httpx.Response | None:
        answer = await _login(http, account.email, account.password, "203.0.113.50")
        return answer if answer.status_code != 429 else None

    r = await eventually_async(after_the_delay, 15, "the delay to pass", interval=0.2)
    assert r.status_code == 200, r.text


async def test_a_lock_holds_one_address_and_leaves_the_owner_alone(http: httpx.AsyncClient) -> None:
    account = await signup(http, "pinned")
    home = "198.51.100.30"
    assert (await _login(http, account.email, account.password, home)).status_code == 200
    guesser = "192.0.2.200"
    codes = [(await _login(http, account.email, "a wrong guess", guesser)).status_code for _ in range(3)]
    assert codes == [401, 401, 423]
    assert (await _login(http, account.email, account.password, guesser)).status_code == 423
    assert (await _login(http, account.email, account.password, home)).status_code == 200
    assert (await _login(http, account.email, account.password, "203.0.113.60")).status_code == 200


async def test_unknown_email_and_wrong_password_take_similar_time(http: httpx.AsyncClient) -> None:
    accounts = [await signup(http, "timing") for _ in range(6)]
    wrong, unknown = [], []
    # Alternate the two kinds so that load on the machine hits both alike; one failure per email.
    for account in accounts:
        started = time.perf_counter()
        assert (await _login(http, account.email, "not the password")).status_code == 401
        wrong.append(time.perf_counter() - started)
        started = time.perf_counter()
        r = await _login(http, f"ghost-{uuid.uuid4().hex[:8]}@example.com", "not the password")
        assert r.status_code == 401
        unknown.append(time.perf_counter() - started)
    ratio = statistics.median(unknown) / statistics.median(wrong)
    # Both verify an argon2 hash; without the dummy hash an unknown email answers many times faster.
    assert 0.5 < ratio < 2.0, (wrong, unknown)


@pytest.mark.parametrize(
    "password",
    ["short1", "ninechars", "password123", "Qwertyuiop", "1234567890", "aaaaaaaaaaaa", "abababababab"],
)
async def test_weak_passwords_are_refused(http: httpx.AsyncClient, password: str) -> None:
    email = f"weak-{uuid.uuid4().hex[:8]}@example.com"
    r = await http.post("/api/auth/register", json={"email": email, "password": password})
    assert r.status_code == 422, (password, r.text)
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["loc"][-1] for d in error["details"]] == ["password"]


async def test_password_equal_to_the_email_is_refused(http: httpx.AsyncClient) -> None:
    name = f"mailbox{uuid.uuid4().hex[:8]}"
    r = await http.post("/api/auth/register", json={"email": f"{name}@example.com", "password": name})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"][-1] == "password"
    r = await http.post(
        "/api/auth/register", json={"email": f"{name}@example.com", "password": "a fine long passphrase"}
    )
    assert r.status_code == 201
