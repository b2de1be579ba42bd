"""Paid work is paid for: generation settings fixed when a message is accepted, only priced chat models,
cancelled and failed replies paying for their prompt, indexing charged for the text it embeds, and admin
amounts and partial updates kept inside what the database can hold.

Real processes throughout: the API, the billing and embeddings workers, an llm worker the tests start and
stop, the fake LLM (chat and embeddings), the embedded Postgres and Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.api import Account, new_dialog, signup
from tests.fixtures.billing import balance_row, ledger_sums, make_admin, sql
from tests.fixtures.stack import FakeLLM, Stack, running_stack

SIGNUP_CREDIT = 5_000_000


@pytest.fixture(scope="module")
def integrity_stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Any) -> Iterator[Stack]:
    env = {
        **stack_env,
        **fake_llm.env,
        "CHATAI_SIGNUP_CREDIT_MICROS": str(SIGNUP_CREDIT),
        "CHATAI_BILLING_HOLD_SWEEP_SECONDS": "600",
    }
    with running_stack(env, log_dir, workers=("billing",)) as system:
        yield system


@pytest.fixture
async def http(integrity_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=integrity_stack.base_url, timeout=30) as client:
        yield client


async def admin(http: httpx.AsyncClient, database_url: str) -> Account:
    account = await signup(http, "admin")
    make_admin(database_url, account.user_id)
    return account


def assert_ledger_exact(database_url: str, user_id: str) -> tuple[int, int]:
    """The balance row equals the sums of its ledger entries; returns (balance, held)."""
    balance, held = balance_row(database_url, user_id)
    assert (balance, held) == ledger_sums(database_url, user_id)
    assert 0 <= held <= balance
    return balance, held


def assert_validation_error(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in str(error["details"]), error


# Bounds.


async def test_admin_amounts_outside_the_ledger_range_are_refused(
    http: httpx.AsyncClient, database_url: str
) -> None:
    user = await signup(http, "bounded")
    boss = await admin(http, database_url)
    topup = f"/api/admin/users/{user.user_id}/topup"
    for amount in (-(10**30), 10**30, -(10**13) - 1, 10**13 + 1, 2**63):
        body = {"amount_micros": amount, "reason": "typo", "idempotency_key": f"k{amount}"}
        assert_validation_error(await http.post(topup, json=body, headers=boss.headers), "amount_micros")
    ok = {"amount_micros": 1_000, "reason": "goodwill", "idempotency_key": "fine"}
    transaction = await http.post(topup, json=ok, headers=boss.headers)
    assert transaction.status_code == 201, transaction.text
    refund = f"/api/admin/transactions/{transaction.json()['id']}/refund"
    for amount in (10**30, -(10**30), 0):
        body = {"amount_micros": amount, "reason": "typo", "idempotency_key": f"r{amount}"}
        assert_validation_error(await http.post(refund, json=body, headers=boss.headers), "amount_micros")
    # Nothing but the signup credit and the one top-up was booked.
    assert assert_ledger_exact(database_url, user.user_id) == (SIGNUP_CREDIT + 1_000, 0)


async def test_null_on_a_field_that_needs_a_value_is_refused_by_every_patch(
    http: httpx.AsyncClient, database_url: str
) -> None:
    owner = await signup(http, "patcher")
    assistant_id, _ = await new_dialog(http, owner, greeting="Hello", retrieval_top_k=3)
    path = f"/api/assistants/{assistant_id}"
    before = (await http.get(path, headers=owner.headers)).json()
    required = (
        "name", "system_prompt", "model", "temperature", "max_tokens", "widget_allowed_origins",
        "telegram_streaming",
    )  # fmt: skip
    for field in required:
        r = await http.patch(path, json={field: None}, headers=owner.headers)
        assert_validation_error(r, field)
    assert (await http.get(path, headers=owner.headers)).json() == before
    # Optional settings still reset with null.
    r = await http.patch(path, json={"greeting": None, "retrieval_top_k": None}, headers=owner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["greeting"] is None and r.json()["retrieval_top_k"] is None
    r = await http.patch(path, json={"name": "Renamed"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["name"] == "Renamed"

    boss = await admin(http, database_url)
    user_path = f"/api/admin/users/{owner.user_id}"
    for field in ("role", "is_active"):
        assert_validation_error(await http.patch(user_path, json={field: None}, headers=boss.headers), field)
    rows = sql(database_url, "SELECT role::text, is_active FROM users WHERE id = %s", owner.user_id)
    assert rows == [("user", True)]
