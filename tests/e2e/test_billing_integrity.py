"""Paid work is paid for: generation settings fixed when a message is accepted, only priced chat models,
cancelled and failed replies paying for their prompt, indexing charged for the text it embeds, and admin
amounts and partial updates kept inside what the database can hold.

Real processes throughout: the API, the billing and embeddings workers, an llm worker the tests start and
stop, the fake LLM (chat and embeddings), the embedded Postgres and Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.api import Account, WsClient, new_dialog, poll_reply, post_message, signup
from tests.fixtures.billing import balance_row, entries_for, ledger_sums, make_admin, sql
from tests.fixtures.documents import make_docx
from tests.fixtures.processes import Child, eventually
from tests.fixtures.stack import FakeLLM, Stack, running_stack

SIGNUP_CREDIT = 5_000_000
CONTEXT_TOKENS = 2000
EMBEDDING_MODEL = "fake-embed-integrity"
# 500 micros a token either way: a reply of 1,000 tokens worst case holds 500,000.
PRICEY = {"input_micros_per_mtok": 500_000_000, "output_micros_per_mtok": 500_000_000}
FREE = {"input_micros_per_mtok": 0, "output_micros_per_mtok": 0}


@pytest.fixture(scope="module")
def integrity_stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: Any) -> Iterator[Stack]:
    env = {
        **stack_env,
        **fake_llm.env,
        "CHATAI_SIGNUP_CREDIT_MICROS": str(SIGNUP_CREDIT),
        "CHATAI_LLM_CONTEXT_TOKENS": str(CONTEXT_TOKENS),
        "CHATAI_EMBEDDING_PROVIDER": "openai",
        "CHATAI_EMBEDDING_BASE_URL": fake_llm.base_url,
        "CHATAI_EMBEDDING_API_KEY": "test-key",
        "CHATAI_EMBEDDING_MODEL": EMBEDDING_MODEL,
        "CHATAI_BILLING_HOLD_SWEEP_SECONDS": "600",
    }
    with running_stack(env, log_dir, workers=("billing", "embeddings")) as system:
        yield system


@pytest.fixture(scope="module")
def llm_workers() -> dict[str, Child]:
    """The llm worker currently running, if any: tests that need replies queued start it themselves."""
    return {}


def start_llm(stack: Stack, workers: dict[str, Child]) -> None:
    if "llm" not in workers:
        workers["llm"] = stack.start_worker("llm")


def stop_llm(workers: dict[str, Child]) -> None:
    worker = workers.pop("llm", None)
    if worker is not None:
        worker.stop()


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


async def wait_settled(database_url: str, reference: str, timeout: float = 60) -> list[tuple[str, int]]:
    """The ledger entries about a reply or document once its hold is released."""

    def settled() -> list[tuple[str, int]] | None:
        entries = entries_for(database_url, reference)
        return entries if any(kind == "release" for kind, _ in entries) else None

    return await asyncio.to_thread(eventually, settled, timeout, f"{reference} to settle")  # type: ignore[return-value]


def charged(entries: list[tuple[str, int]]) -> int:
    return sum(-amount for kind, amount in entries if kind == "charge")


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


# Generation settings are fixed when the message is accepted.


async def test_switching_the_model_after_posting_does_not_change_the_reply_or_its_price(
    http: httpx.AsyncClient, integrity_stack: Stack, fake_llm: FakeLLM, database_url: str,
    llm_workers: dict[str, Child],
) -> None:  # fmt: skip
    stop_llm(llm_workers)  # the reply waits in the queue while the owner changes the assistant
    boss = await admin(http, database_url)
    for model, price in (("free-chat", FREE), ("pricey-chat", PRICEY)):
        r = await http.put(f"/api/admin/prices/{model}", json=price, headers=boss.headers)
        assert r.status_code == 200, r.text
    owner = await signup(http, "swapper")
    settings = {"model": "free-chat", "max_tokens": 8, "temperature": 0.2, "system_prompt": "Be brief."}
    assistant_id, dialog_id = await new_dialog(http, owner, **settings)
    marker = "swap-marker-1"
    reply_id = (await post_message(http, owner, dialog_id, f"{marker} [[tokens:5]]"))["reply"]["id"]
    assert entries_for(database_url, reply_id) == [("hold", 0)]  # the free model holds nothing
    swapped = {
        "model": "pricey-chat", "max_tokens": 1500, "temperature": 1.5,
        "system_prompt": "Write at length. " * 200,
    }  # fmt: skip
    r = await http.patch(f"/api/assistants/{assistant_id}", json=swapped, headers=owner.headers)
    assert r.status_code == 200, r.text

    start_llm(integrity_stack, llm_workers)
    reply = await poll_reply(http, owner, reply_id, timeout=60)
    assert reply["status"] == "completed", reply
    sent = [body for body in fake_llm.chat_requests() if marker in str(body["messages"])]
    assert len(sent) == 1
    assert (sent[0]["model"], sent[0]["max_tokens"], sent[0]["temperature"]) == ("free-chat", 8, 0.2)
    assert sent[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (reply["model"], reply["max_tokens"], reply["temperature"]) == ("free-chat", 8, 0.2)
    entries = await wait_settled(database_url, reply_id)
    assert charged(entries) == 0
    rows = sql(database_url, "SELECT model FROM usage_records WHERE subject_id = %s", reply_id)
    assert rows == [("free-chat",)]

    # The next message is accepted with the new settings, and held and generated at their price.
    marker = "swap-marker-2"
    reply_id = (await post_message(http, owner, dialog_id, f"{marker} [[tokens:5]]"))["reply"]["id"]
    (kind, held), *_ = entries_for(database_url, reply_id)
    assert kind == "hold" and held >= 1500 * 500
    assert (await poll_reply(http, owner, reply_id, timeout=60))["status"] == "completed"
    sent = [body for body in fake_llm.chat_requests() if marker in str(body["messages"])]
    assert (sent[0]["model"], sent[0]["max_tokens"]) == ("pricey-chat", 1500)
    assert 0 < charged(await wait_settled(database_url, reply_id)) <= held
    assert_ledger_exact(database_url, owner.user_id)


# Replies that end early pay for the prompt the model read.

# 1,000 micros a prompt token and 1 an output token: what a reply pays shows which tokens it paid for.
PROMPT_PRICED = {"input_micros_per_mtok": 1_000_000_000, "output_micros_per_mtok": 1_000_000}
LONG_PROMPT = " ".join(f"word{i}" for i in range(400))


async def prompt_priced_dialog(http: httpx.AsyncClient, database_url: str, name: str) -> tuple[Account, str]:
    boss = await admin(http, database_url)
    r = await http.put("/api/admin/prices/prompt-priced", json=PROMPT_PRICED, headers=boss.headers)
    assert r.status_code == 200, r.text
    owner = await signup(http, name)
    _, dialog_id = await new_dialog(http, owner, model="prompt-priced", max_tokens=200)
    return owner, dialog_id


def assert_paid_for(reply: dict[str, Any], entries: list[tuple[str, int]], prompt_at_least: int) -> None:
    """The charge is the reply's recorded usage at PROMPT_PRICED, and includes the whole prompt."""
    prompt, completion = reply["usage"]["prompt_tokens"], reply["usage"]["completion_tokens"]
    assert prompt >= prompt_at_least, reply["usage"]
    assert charged(entries) == prompt * 1_000 + completion == reply["cost_micros"]


async def test_a_reply_cancelled_after_its_first_delta_pays_for_its_prompt(
    http: httpx.AsyncClient, integrity_stack: Stack, database_url: str, llm_workers: dict[str, Child]
) -> None:
    start_llm(integrity_stack, llm_workers)
    owner, dialog_id = await prompt_priced_dialog(http, database_url, "canceller")
    async with WsClient(integrity_stack.ws_url, owner.access_token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        posted = await post_message(http, owner, dialog_id, f"{LONG_PROMPT} [[tokens:200]] [[delay_ms:30]]")
        reply_id = posted["reply"]["id"]
        await ws.until("reply.delta", reply_id)
        r = await http.post(f"/api/messages/{reply_id}/cancel", headers=owner.headers)
        assert r.status_code == 202, r.text
        await ws.until("reply.cancelled", reply_id)
    entries = await wait_settled(database_url, reply_id)
    reply = await poll_reply(http, owner, reply_id, timeout=60)
    assert reply["status"] == "cancelled" and 0 < reply["usage"]["completion_tokens"] < 200
    assert_paid_for(reply, entries, prompt_at_least=400)
    assert_ledger_exact(database_url, owner.user_id)


async def test_a_failed_reply_pays_for_its_prompt_once_the_model_began_answering(
    http: httpx.AsyncClient, integrity_stack: Stack, database_url: str, llm_workers: dict[str, Child]
) -> None:
    start_llm(integrity_stack, llm_workers)
    owner, dialog_id = await prompt_priced_dialog(http, database_url, "failing")
    # The stream breaks after a few deltas, on every attempt.
    reply_id = (await post_message(http, owner, dialog_id, f"{LONG_PROMPT} [[fault:stream_error]]"))["reply"][
        "id"
    ]
    assert (await poll_reply(http, owner, reply_id, timeout=60))["status"] == "failed"
    entries = await wait_settled(database_url, reply_id)
    assert_paid_for(await poll_reply(http, owner, reply_id, timeout=60), entries, prompt_at_least=400)
    # Refused before it answered anything (a 5xx on every attempt): free.
    reply_id = (await post_message(http, owner, dialog_id, f"{LONG_PROMPT} [[fault:500]]"))["reply"]["id"]
    reply = await poll_reply(http, owner, reply_id, timeout=60)
    assert reply["status"] == "failed", reply
    assert [kind for kind, _ in await wait_settled(database_url, reply_id)] == ["hold", "release"]
    assert reply["usage"] == {"prompt_tokens": None, "completion_tokens": None}
    assert_ledger_exact(database_url, owner.user_id)


# Only priced chat models.


async def test_an_assistant_may_use_only_a_chat_model_with_its_own_price(
    http: httpx.AsyncClient, database_url: str
) -> None:
    owner = await signup(http, "chooser")
    boss = await admin(http, database_url)
    assert (await http.get("/api/models")).status_code == 401
    r = await http.get("/api/models", headers=owner.headers)
    assert r.status_code == 200, r.text
    listed = [item["model"] for item in r.json()["items"]]
    assert "gpt-4o-mini" in listed and "*" not in listed and "all-MiniLM-L6-v2" not in listed
    kinds = {
        p["model"]: p["kind"]
        for p in (await http.get("/api/admin/prices", headers=boss.headers)).json()["items"]
    }
    assert kinds["*"] == kinds["all-MiniLM-L6-v2"] == "embedding" and kinds["gpt-4o-mini"] == "chat"

    # Unpriced, embedding and default-row models are refused, with the models that may be chosen.
    for model in ("unpriced-model", "all-MiniLM-L6-v2", "*"):
        r = await http.post("/api/assistants", json={"name": "x", "model": model}, headers=owner.headers)
        assert_validation_error(r, "model")
        assert r.json()["error"]["details"][0]["allowed"] == listed
    assert sql(database_url, "SELECT count(*) FROM assistants WHERE owner_id = %s", owner.user_id) == [(0,)]
    assistant_id, dialog_id = await new_dialog(http, owner)  # the default chat model
    path = f"/api/assistants/{assistant_id}"
    for model in ("unpriced-model", "all-MiniLM-L6-v2", "*"):
        assert_validation_error(await http.patch(path, json={"model": model}, headers=owner.headers), "model")
    assert (await http.get(path, headers=owner.headers)).json()["model"] == "gpt-4o-mini"

    # An admin makes a model available by pricing it; an embedding model's price does not.
    price = {"input_micros_per_mtok": 1_000, "output_micros_per_mtok": 2_000}
    r = await http.put("/api/admin/prices/new-chat-model", json=price, headers=boss.headers)
    assert r.status_code == 200 and r.json()["kind"] == "chat", r.text
    r = await http.put(
        "/api/admin/prices/new-embedder", json={**price, "kind": "embedding"}, headers=boss.headers
    )
    assert r.status_code == 200 and r.json()["kind"] == "embedding", r.text
    r = await http.put("/api/admin/prices/*", json={**price, "kind": "chat"}, headers=boss.headers)
    assert_validation_error(r, "kind")
    listed = [
        item["model"] for item in (await http.get("/api/models", headers=owner.headers)).json()["items"]
    ]
    assert "new-chat-model" in listed and "new-embedder" not in listed
    r = await http.patch(path, json={"model": "new-chat-model"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["model"] == "new-chat-model", r.text
    assert_validation_error(
        await http.patch(path, json={"model": "new-embedder"}, headers=owner.headers), "model"
    )

    # A model an admin has since made an embedding model takes no new messages (and writes nothing).
    r = await http.put(
        "/api/admin/prices/new-chat-model", json={**price, "kind": "embedding"}, headers=boss.headers
    )
    assert r.status_code == 200, r.text
    r = await http.post(f"/api/dialogs/{dialog_id}/messages", json={"content": "hi"}, headers=owner.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "model_not_available", r.text
    assert sql(database_url, "SELECT count(*) FROM messages WHERE dialog_id = %s", dialog_id) == [(0,)]
    assert assert_ledger_exact(database_url, owner.user_id) == (SIGNUP_CREDIT, 0)


# Indexing pays for the text it embeds, not for the size of the file.

# 10 micros an embedded token.
EMBEDDING_PRICE = {"input_micros_per_mtok": 10_000_000, "output_micros_per_mtok": 0, "kind": "embedding"}
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def compressible_docx() -> bytes:
    """About 38 KB that extract to 40,000 words (52,000 tokens of chunks): four times what the size holds."""
    return make_docx([" ".join(WORDS * 5) for _ in range(800)])


async def upload(http: httpx.AsyncClient, owner: Account, assistant_id: str, data: bytes) -> str:
    r = await http.post(
        f"/api/assistants/{assistant_id}/documents",
        files={"file": ("dense.docx", data, "application/octet-stream")},
        headers=owner.headers,
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def wait_document(http: httpx.AsyncClient, owner: Account, document_id: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any]:
        while True:
            body = (await http.get(f"/api/documents/{document_id}", headers=owner.headers)).json()
            if body["status"] in ("ready", "failed"):
                return body
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(ended(), 90)


async def test_a_compressed_document_is_charged_for_all_the_text_it_embeds(
    http: httpx.AsyncClient, database_url: str
) -> None:
    boss = await admin(http, database_url)
    r = await http.put(f"/api/admin/prices/{EMBEDDING_MODEL}", json=EMBEDDING_PRICE, headers=boss.headers)
    assert r.status_code == 200, r.text
    owner = await signup(http, "compressor")
    assistant_id, _ = await new_dialog(http, owner)
    data = compressible_docx()

    document_id = await upload(http, owner, assistant_id, data)
    (kind, upload_hold), *_ = entries_for(database_url, document_id)
    assert kind == "hold" and upload_hold > 0
    document = await wait_document(http, owner, document_id)
    assert document["status"] == "ready", document
    entries = await wait_settled(database_url, document_id)
    ((tokens,),) = sql(
        database_url, "SELECT sum(token_count) FROM chunks WHERE document_id = %s", document_id
    )
    assert tokens > 3 * upload_hold // 10  # the text is several times what the file's size suggested
    assert charged(entries) == tokens * 10
    assert [kind for kind, _ in entries] == ["hold", "hold", "charge", "release", "release"]
    balance, held = assert_ledger_exact(database_url, owner.user_id)
    assert (balance, held) == (SIGNUP_CREDIT - tokens * 10, 0)

    # With enough left for the upload's hold but not for the text, the document fails, readably, and the
    # balance is untouched.
    topup = f"/api/admin/users/{owner.user_id}/topup"
    leave = 2 * upload_hold
    body = {"amount_micros": leave - balance, "reason": "drain", "idempotency_key": "drain"}
    assert (await http.post(topup, json=body, headers=boss.headers)).status_code == 201
    document_id = await upload(http, owner, assistant_id, data)
    document = await wait_document(http, owner, document_id)
    assert document["status"] == "failed" and "balance does not cover" in document["error"], document
    assert document["chunk_count"] == 0
    assert [kind for kind, _ in await wait_settled(database_url, document_id)] == ["hold", "release"]
    assert assert_ledger_exact(database_url, owner.user_id) == (leave, 0)
