"""Billing through the real system: API, llm and billing worker processes, embedded Postgres, real Redis,
the fake LLM and a fake Stripe the real SDK talks to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.fixtures.api import Account, WsClient, new_dialog, poll_reply, post_message, signup
from tests.fixtures.billing import balance_row, entries_for, ledger_sums, make_admin, send_settle
from tests.fixtures.database import sql
from tests.fixtures.fake_stripe import FakeStripe
from tests.fixtures.processes import Child, eventually, eventually_async
from tests.fixtures.stack import FakeLLM, Stack, running_stack

SIGNUP_CREDIT = 5_000_000
CONTEXT_TOKENS = 1000
MAX_TOKENS = 100
# At 500 micros a token either way, a reply's worst case (900 prompt + 100 output tokens) is 500,000:
# the signup credit covers exactly 10 replies.
PRICEY = {"input_micros_per_mtok": 500_000_000, "output_micros_per_mtok": 500_000_000}
HOLD = 500_000


@pytest.fixture(scope="module")
def fake_stripe(stack_env: dict[str, str], log_dir: Any) -> Iterator[FakeStripe]:
    server = FakeStripe(log_dir, stack_env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(
    stack_env: dict[str, str], fake_llm: FakeLLM, fake_stripe: FakeStripe, log_dir: Any
) -> Iterator[Stack]:
    env = {
        **stack_env,
        **fake_llm.env,
        "CHATAI_LLM_CONTEXT_TOKENS": str(CONTEXT_TOKENS),
        "CHATAI_SIGNUP_CREDIT_MICROS": str(SIGNUP_CREDIT),
        "CHATAI_STRIPE_API_KEY": fake_stripe.api_key,
        "CHATAI_STRIPE_API_BASE": fake_stripe.base_url,
        "CHATAI_STRIPE_WEBHOOK_SECRET": fake_stripe.webhook_secret,
        "CHATAI_RECONCILE_INTERVAL_SECONDS": "1",
        "CHATAI_BILLING_HOLD_SWEEP_SECONDS": "600",
    }
    with running_stack(env, log_dir) as system:
        yield system


@pytest.fixture(scope="module")
def workers() -> dict[str, Child]:
    """The billing worker currently running, if any (tests start and kill it)."""
    return {}


def start_billing(stack: Stack, workers: dict[str, Child], *extra: str) -> Child:
    stop_billing(workers)
    workers["billing"] = stack.start_worker("billing", *extra)
    return workers["billing"]


def stop_billing(workers: dict[str, Child]) -> None:
    worker = workers.pop("billing", None)
    if worker is not None:
        worker.stop()


async def admin(http: httpx.AsyncClient, database_url: str) -> Account:
    account = await signup(http, "admin")
    make_admin(database_url, account.user_id)
    return account


async def pricey_dialog(http: httpx.AsyncClient, database_url: str, user: Account) -> str:
    boss = await admin(http, database_url)
    r = await http.put("/api/admin/prices/pricey-model", json=PRICEY, headers=boss.headers)
    assert r.status_code == 200, r.text
    _, dialog_id = await new_dialog(http, user, model="pricey-model", max_tokens=MAX_TOKENS)
    return dialog_id


async def wait_settled(database_url: str, reply_id: str, timeout: float = 30) -> list[tuple[str, int]]:
    def settled() -> list[tuple[str, int]] | None:
        entries = entries_for(database_url, reply_id)
        return entries if any(kind == "release" for kind, _ in entries) else None

    return await asyncio.to_thread(eventually, settled, timeout, f"reply {reply_id} to settle")  # type: ignore[return-value]


def assert_consistent(database_url: str, user_id: str) -> tuple[int, int]:
    balance, held = balance_row(database_url, user_id)
    assert (balance, held) == ledger_sums(database_url, user_id)
    assert 0 <= held <= balance
    return balance, held


async def test_concurrent_messages_accept_only_what_the_balance_covers(
    http: httpx.AsyncClient, stack: Stack, database_url: str, workers: dict[str, Child]
) -> None:
    stop_billing(workers)  # holds stay open until the burst is over, so the count is exact
    user = await signup(http, "burst")
    dialog_id = await pricey_dialog(http, database_url, user)

    async def send(i: int) -> httpx.Response:
        return await http.post(
            f"/api/dialogs/{dialog_id}/messages",
            json={"content": f"hi {i} [[tokens:20]]"},
            headers=user.headers,
        )

    responses = await asyncio.gather(*(send(i) for i in range(100)))
    accepted = [r for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code == 402]
    assert len(accepted) == SIGNUP_CREDIT // HOLD == 10
    assert len(refused) == 90
    assert {r.json()["error"]["code"] for r in refused} == {"insufficient_balance"}
    # A refused request wrote nothing: only the accepted messages and their replies exist.
    (count,), *_ = sql(database_url, "SELECT count(*) FROM messages WHERE dialog_id = %s", dialog_id)
    assert count == 20
    assert assert_consistent(database_url, user.user_id) == (SIGNUP_CREDIT, SIGNUP_CREDIT)

    start_billing(stack, workers)
    charged = 0
    for r in accepted:
        reply_id = r.json()["reply"]["id"]
        assert (await poll_reply(http, user, reply_id))["status"] == "completed"
        entries = await wait_settled(database_url, reply_id)
        assert [k for k, _ in entries] == ["hold", "charge", "release"]
        assert 0 < -entries[1][1] <= HOLD
        charged += -entries[1][1]
    balance, held = assert_consistent(database_url, user.user_id)
    assert (balance, held) == (SIGNUP_CREDIT - charged, 0)
    body = (await http.get("/api/balance", headers=user.headers)).json()
    assert body["balance_micros"] == balance and body["currency"] == "USD"
    # Holds and releases are internal: the listing shows the top-up and the charges.
    r = await http.get("/api/balance/transactions", params={"limit": 200}, headers=user.headers)
    kinds = [item["kind"] for item in r.json()["items"]]
    assert kinds.count("charge") == 10 and kinds.count("topup") == 1 and len(kinds) == 11
    # The reply carries its cost, and its usage is recorded for analytics.
    reply_id = accepted[0].json()["reply"]["id"]
    (cost, tokens), *_ = sql(
        database_url,
        "SELECT m.cost_micros, u.prompt_tokens + u.completion_tokens FROM messages m "
        "JOIN usage_records u ON u.subject_id = m.id WHERE m.id = %s",
        reply_id,
    )
    assert cost == -entries_for(database_url, reply_id)[1][1] and tokens > 0


async def test_charge_task_delivered_three_times_books_once(
    http: httpx.AsyncClient, stack: Stack, database_url: str, stack_redis_url: str,
    workers: dict[str, Child],
) -> None:  # fmt: skip
    stop_billing(workers)
    user = await signup(http, "thrice")
    _, dialog_id = await new_dialog(http, user)
    reply_id = (await post_message(http, user, dialog_id, "charge me once [[tokens:30]]"))["reply"]["id"]
    await poll_reply(http, user, reply_id)
    for _ in range(2):  # the queued settle task, plus two more deliveries of it
        send_settle(stack_redis_url, reply_id)
    start_billing(stack, workers)
    await wait_settled(database_url, reply_id)
    await asyncio.to_thread(
        eventually, lambda: workers["billing"].log_text().count("succeeded") >= 3, 30, "three deliveries"
    )
    assert [k for k, _ in entries_for(database_url, reply_id)] == ["hold", "charge", "release"]
    assert assert_consistent(database_url, user.user_id)[1] == 0


async def test_billing_worker_killed_between_charge_and_ack_books_once(
    http: httpx.AsyncClient, stack: Stack, database_url: str, stack_redis_url: str,
    workers: dict[str, Child],
) -> None:  # fmt: skip
    stop_billing(workers)
    user = await signup(http, "killed")
    _, dialog_id = await new_dialog(http, user)
    reply_id = (await post_message(http, user, dialog_id, "kill after charge [[tokens:30]]"))["reply"]["id"]
    await poll_reply(http, user, reply_id)
    doomed = start_billing(stack, workers, "--include", "tests.fixtures.billing_hooks")
    await asyncio.to_thread(doomed.wait_for_log, f"SETTLED-NOT-ACKED {reply_id} settled", 30)
    doomed.kill()
    workers.pop("billing")
    # The charge committed, and the broker still holds the message unacked: it will be delivered again.
    assert [k for k, _ in entries_for(database_url, reply_id)] == ["hold", "charge", "release"]
    unacked = redis.Redis.from_url(stack_redis_url).hgetall("unacked")
    assert any(reply_id.encode() in payload for payload in unacked.values())
    send_settle(stack_redis_url, reply_id)  # the redelivery, without waiting out the visibility timeout
    survivor = start_billing(stack, workers)
    await asyncio.to_thread(survivor.wait_for_log, "'already_settled'", 30)
    assert [k for k, _ in entries_for(database_url, reply_id)] == ["hold", "charge", "release"]
    assert assert_consistent(database_url, user.user_id)[1] == 0


async def test_failed_reply_releases_its_hold(
    http: httpx.AsyncClient, stack: Stack, database_url: str, workers: dict[str, Child]
) -> None:
    if "billing" not in workers:
        start_billing(stack, workers)
    user = await signup(http, "failing")
    _, dialog_id = await new_dialog(http, user)
    reply_id = (await post_message(http, user, dialog_id, "no luck [[fault:400]]"))["reply"]["id"]
    assert (await poll_reply(http, user, reply_id))["status"] == "failed"
    entries = await wait_settled(database_url, reply_id)
    assert [k for k, _ in entries] == ["hold", "release"]  # nothing was generated: nothing charged
    assert entries[0][1] == -entries[1][1] > 0
    assert assert_consistent(database_url, user.user_id) == (SIGNUP_CREDIT, 0)


async def test_admin_topup_prices_and_roles(http: httpx.AsyncClient, stack: Stack, database_url: str) -> None:
    user = await signup(http, "topped")
    other = await signup(http, "other")
    boss = await admin(http, database_url)
    # Non-admins are refused every admin endpoint.
    topup_path = f"/api/admin/users/{user.user_id}/topup"
    for method, path, body in (
        ("GET", "/api/admin/prices", None),
        ("PUT", "/api/admin/prices/x", {"input_micros_per_mtok": 1, "output_micros_per_mtok": 1}),
        ("POST", topup_path, {"amount_micros": 1, "reason": "r", "idempotency_key": "k"}),
        ("GET", "/api/admin/reconciliation", None),
    ):
        r = await http.request(method, path, json=body, headers=user.headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (path, r.text)
    r = await http.get("/api/admin/prices", headers=boss.headers)
    assert "*" in {p["model"] for p in r.json()["items"]}

    topup = {"amount_micros": 2_500_000, "reason": "goodwill", "idempotency_key": "ticket-42"}
    async with WsClient(stack.ws_url, user.access_token) as ws:
        await ws.subscribe("user")
        first = await http.post(f"/api/admin/users/{user.user_id}/topup", json=topup, headers=boss.headers)
        assert first.status_code == 201, first.text
        async with asyncio.timeout(10):
            while True:
                frame = await ws.recv()
                if frame.get("type") == "balance.changed":
                    break
    assert frame["data"]["balance_micros"] == SIGNUP_CREDIT + 2_500_000
    again = await http.post(f"/api/admin/users/{user.user_id}/topup", json=topup, headers=boss.headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert (
        first.json()["kind"] == "topup" and first.json()["balance_after_micros"] == SIGNUP_CREDIT + 2_500_000
    )
    assert (await http.get("/api/balance", headers=user.headers)).json()["balance_micros"] == 7_500_000
    clash = await http.post(
        f"/api/admin/users/{user.user_id}/topup", json={**topup, "amount_micros": 1}, headers=boss.headers
    )
    assert clash.status_code == 409
    missing = await http.post(
        "/api/admin/users/00000000-0000-0000-0000-000000000000/topup", json=topup, headers=boss.headers
    )
    assert missing.status_code == 404
    # Another tenant's transaction is not found, not forbidden.
    transaction_id = first.json()["id"]
    assert (
        await http.get(f"/api/balance/transactions/{transaction_id}", headers=user.headers)
    ).status_code == 200
    r = await http.get(f"/api/balance/transactions/{transaction_id}", headers=other.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_stripe_checkout_and_webhook_credit_once(
    http: httpx.AsyncClient, stack: Stack, database_url: str, fake_stripe: FakeStripe
) -> None:
    user = await signup(http, "payer")
    r = await http.post("/api/balance/checkout", json={"amount_micros": 10_000_000}, headers=user.headers)
    assert r.status_code == 201, r.text
    session_id, url = r.json()["id"], r.json()["url"]
    assert url.startswith(fake_stripe.base_url) and session_id in url
    payload, signature = await asyncio.to_thread(fake_stripe.complete, session_id)
    hook = "/api/payments/stripe/webhook"
    headers = {"Content-Type": "application/json"}

    forged = payload.replace("10000", "99999") if "10000" in payload else payload + " "
    for bad_signature, body in (
        (signature[:-4] + "0000", payload),  # tampered signature
        ("t=1,v1=" + "ab" * 32, payload),  # stale and wrong
        (signature, forged),  # a body the signature was not made for
        ("", payload),
    ):
        r = await http.post(hook, content=body, headers={**headers, "Stripe-Signature": bad_signature})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_signature", r.text
    assert balance_row(database_url, user.user_id)[0] == SIGNUP_CREDIT

    for expected in ("credited", "duplicate", "duplicate"):
        r = await http.post(hook, content=payload, headers={**headers, "Stripe-Signature": signature})
        assert r.status_code == 200 and r.json()["outcome"] == expected, r.text
    assert entries_for(database_url, session_id) == [("topup", 10_000_000)]
    assert assert_consistent(database_url, user.user_id)[0] == SIGNUP_CREDIT + 10_000_000
    r = await http.post("/api/balance/checkout", json={"amount_micros": 12_345}, headers=user.headers)
    assert r.status_code == 422


async def test_admin_refunds_a_charge_never_beyond_it(
    http: httpx.AsyncClient, stack: Stack, database_url: str, workers: dict[str, Child]
) -> None:
    if "billing" not in workers:
        start_billing(stack, workers)
    user = await signup(http, "refunded")
    other = await signup(http, "bystander")
    boss = await admin(http, database_url)
    _, dialog_id = await new_dialog(http, user)
    reply_id = (await post_message(http, user, dialog_id, "bill me [[tokens:40]]"))["reply"]["id"]
    await poll_reply(http, user, reply_id)
    await wait_settled(database_url, reply_id)
    items = (await http.get("/api/balance/transactions", headers=user.headers)).json()["items"]
    charge = next(t for t in items if t["kind"] == "charge")
    topup = next(t for t in items if t["kind"] == "topup")
    charged = -charge["amount_micros"]
    path = f"/api/admin/transactions/{charge['id']}/refund"

    r = await http.post(
        path, json={"amount_micros": 1, "reason": "r", "idempotency_key": "k"}, headers=user.headers
    )
    assert r.status_code == 403
    part = {"amount_micros": charged - 1, "reason": "slow answer", "idempotency_key": "ticket-7"}
    first = await http.post(path, json=part, headers=boss.headers)
    assert first.status_code == 201, first.text
    assert first.json()["kind"] == "refund" and first.json()["amount_micros"] == charged - 1
    assert first.json()["reference"] == charge["id"]
    again = await http.post(path, json=part, headers=boss.headers)
    assert again.status_code == 201 and again.json() == first.json()
    too_much = await http.post(
        path, json={"amount_micros": 2, "reason": "more", "idempotency_key": "ticket-8"}, headers=boss.headers
    )
    assert too_much.status_code == 409 and too_much.json()["error"]["details"] == {"refundable_micros": 1}
    rest = await http.post(
        path, json={"reason": "the rest", "idempotency_key": "ticket-9"}, headers=boss.headers
    )
    assert rest.status_code == 201 and rest.json()["amount_micros"] == 1
    r = await http.post(path, json={"reason": "again", "idempotency_key": "ticket-10"}, headers=boss.headers)
    assert r.status_code == 409
    r = await http.post(
        f"/api/admin/transactions/{topup['id']}/refund",
        json={"reason": "not a charge", "idempotency_key": "x"},
        headers=boss.headers,
    )
    assert r.status_code == 409
    r = await http.post(
        "/api/admin/transactions/00000000-0000-0000-0000-000000000000/refund",
        json={"reason": "missing", "idempotency_key": "x"},
        headers=boss.headers,
    )
    assert r.status_code == 404
    assert assert_consistent(database_url, user.user_id) == (SIGNUP_CREDIT, 0)
    r = await http.get(f"/api/balance/transactions/{first.json()['id']}", headers=other.headers)
    assert r.status_code == 404


async def test_reconciliation_reports_a_corrupted_balance(
    http: httpx.AsyncClient, stack: Stack, database_url: str, workers: dict[str, Child]
) -> None:
    if "billing" not in workers:
        start_billing(stack, workers)
    victim = await signup(http, "victim")
    boss = await admin(http, database_url)
    sql(
        database_url,
        "UPDATE balances SET balance_micros = balance_micros + 1234 WHERE user_id = %s",
        victim.user_id,
    )
    beat = stack.start_beat()
    try:

        async def reported() -> dict[str, Any] | None:
            r = await http.get("/api/admin/reconciliation", headers=boss.headers)
            assert r.status_code == 200, r.text
            return next((item for item in r.json()["items"] if item["owner_id"] == victim.user_id), None)

        found = await eventually_async(reported, 30, "the mismatch to be reported", interval=0.2)
    finally:
        beat.stop()
    assert found["balance_micros"] == SIGNUP_CREDIT + 1234
    assert found["ledger_balance_micros"] == SIGNUP_CREDIT
    # Reported, never fixed silently.
    assert balance_row(database_url, victim.user_id)[0] == SIGNUP_CREDIT + 1234
    assert "balance mismatch for user " + victim.user_id in workers["billing"].log_text()
    # Only the corrupted account is reported.
    r = await http.get("/api/admin/reconciliation", headers=boss.headers)
    assert {item["owner_id"] for item in r.json()["items"]} == {victim.user_id}
    sql(
        database_url,
        "UPDATE balances SET balance_micros = balance_micros - 1234 WHERE user_id = %s",
        victim.user_id,
    )
    stop_billing(workers)


async def test_a_price_or_assistant_edit_applies_to_the_next_message(
    http: httpx.AsyncClient, stack: Stack, database_url: str, workers: dict[str, Child]
) -> None:
    """The accept path reads the assistant and its model's price with the dialog on every message: nothing
    cached in the API process can price a message with settings that have since changed."""
    stop_billing(workers)  # holds stay open: each one shows what its message was priced at
    boss, user = await admin(http, database_url), await signup(http, "editing")
    for model, price in (("edited-model", PRICEY), ("other-model", {k: v // 5 for k, v in PRICEY.items()})):
        r = await http.put(f"/api/admin/prices/{model}", json=price, headers=boss.headers)
        assert r.status_code == 200, r.text
    assistant_id, dialog_id = await new_dialog(http, user, model="edited-model", max_tokens=MAX_TOKENS)

    async def hold_of_next_message() -> int:
        reply_id = (await post_message(http, user, dialog_id, "hello"))["reply"]["id"]
        return dict(entries_for(database_url, reply_id))["hold"]

    assert await hold_of_next_message() == HOLD
    doubled = {k: v * 2 for k, v in PRICEY.items()}
    r = await http.put("/api/admin/prices/edited-model", json=doubled, headers=boss.headers)
    assert r.status_code == 200, r.text
    assert await hold_of_next_message() == 2 * HOLD
    r = await http.patch(
        f"/api/assistants/{assistant_id}", json={"model": "other-model"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    assert await hold_of_next_message() == HOLD // 5
