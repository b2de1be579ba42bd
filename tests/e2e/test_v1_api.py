"""The OpenAI-compatible ``/v1`` API through the official ``openai`` Python SDK, over real sockets against
the real stack (uvicorn, Redis, Postgres, an llm worker, the fake LLM), and the API keys behind it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fixtures.api import Account, signup
from tests.fixtures.billing import sql
from tests.fixtures.processes import eventually
from tests.fixtures.stack import FakeLLM, Stack, running_stack

KEY_RATE_LIMIT = 20  # per minute, this module's stack


@pytest.fixture(scope="module")
def v1_stack(stack_env: dict[str, str], fake_llm: FakeLLM, log_dir: object) -> Iterator[Stack]:
    env = {**stack_env, **fake_llm.env, "CHATAI_RATE_LIMIT_API_KEY": f"{KEY_RATE_LIMIT}/minute"}
    with running_stack(env, log_dir) as system:  # type: ignore[arg-type]
        yield system


@pytest.fixture
async def http(v1_stack: Stack) -> Any:
    async with httpx.AsyncClient(base_url=v1_stack.base_url, timeout=15) as client:
        yield client


@dataclass
class Owner:
    account: Account
    assistant_id: str
    key: str
    key_id: str


async def owner_with_key(http: httpx.AsyncClient, name: str = "owner", **assistant: Any) -> Owner:
    account = await signup(http, name)
    body = {"name": "Helper", "system_prompt": "You are the shop's helper.", **assistant}
    r = await http.post("/api/assistants", json=body, headers=account.headers)
    assert r.status_code == 201, r.text
    assistant_id = r.json()["id"]
    r = await http.post("/api/api-keys", json={"name": "backend"}, headers=account.headers)
    assert r.status_code == 201, r.text
    return Owner(account, assistant_id, r.json()["key"], r.json()["id"])


def sdk(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0, timeout=30)


def async_sdk(stack: Stack, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0, timeout=30)


def slow_request(model: str) -> dict[str, Any]:
    """A request whose reply streams for 20 s (400 tokens, 50 ms apart)."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": "a long story [[tokens:400]] [[delay_ms:50]]"}],
    }


def reply_id_of(completion_id: str) -> str:
    return str(uuid.UUID(completion_id.removeprefix("chatcmpl-")))


async def wait_cancelled(database_url: str, reply_id: str) -> None:
    def cancelled() -> bool:
        (status,), *_ = sql(database_url, "SELECT status::text FROM messages WHERE id = %s", reply_id)
        return bool(status == "cancelled")

    await asyncio.to_thread(eventually, cancelled, 15, "the reply to be cancelled")


def fake_llm_requests(fake_llm: FakeLLM) -> list[dict[str, Any]]:
    stats = httpx.get(fake_llm.control_url.replace("_control", "_stats"), timeout=5).json()
    return stats["recent_requests"]  # type: ignore[no-any-return]


async def test_sync_sdk_lists_models_and_answers_whole_and_streamed(
    http: httpx.AsyncClient, v1_stack: Stack
) -> None:
    owner = await owner_with_key(http)
    client = sdk(v1_stack, owner.key)

    def run() -> None:
        assert [m.id for m in client.models.list()] == [owner.assistant_id]
        messages: Any = [{"role": "user", "content": "hello there [[tokens:12]]"}]
        whole = client.chat.completions.create(model=owner.assistant_id, messages=messages)
        assert whole.object == "chat.completion"
        assert whole.model == owner.assistant_id
        assert whole.choices[0].finish_reason == "stop"
        assert whole.choices[0].message.role == "assistant"
        text = whole.choices[0].message.content
        assert text is not None and text.startswith("Echo: hello there")
        assert whole.usage is not None and whole.usage.completion_tokens == 12
        assert whole.usage.total_tokens == whole.usage.prompt_tokens + 12

        stream = client.chat.completions.create(
            model=owner.assistant_id, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        assert all(c.object == "chat.completion.chunk" for c in chunks)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 12
        assert len({c.id for c in chunks}) == 1

    await asyncio.to_thread(run)


async def test_async_sdk_streams_with_the_requests_history_and_system_messages(
    http: httpx.AsyncClient, v1_stack: Stack, fake_llm: FakeLLM
) -> None:
    owner = await owner_with_key(http, "history")
    client = async_sdk(v1_stack, owner.key)
    messages: Any = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": [{"type": "text", "text": "what is my name? [[tokens:8]]"}]},
    ]
    stream = await client.chat.completions.create(
        model=owner.assistant_id, messages=messages, stream=True, temperature=0.2, max_tokens=100
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("Echo: what is my name?")

    sent = next(r for r in reversed(fake_llm_requests(fake_llm)) if "Ada" in str(r["messages"]))
    assert sent["messages"] == [
        {"role": "system", "content": "You are the shop's helper.\n\nAnswer in French."},
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "what is my name? [[tokens:8]]"},
    ]
    assert sent["temperature"] == 0.2
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 100

    whole = await client.chat.completions.create(model=owner.assistant_id, messages=messages)
    assert whole.choices[0].message.content == text

    # Each call is a dialog of the owner's, with source api, holding the conversation as given.
    r = await http.get("/api/dialogs", headers=owner.account.headers)
    dialogs = r.json()["items"]
    assert len(dialogs) == 2 and {d["source"] for d in dialogs} == {"api"}
    assert all(d["assistant_id"] == owner.assistant_id for d in dialogs)
    r = await http.get(f"/api/dialogs/{dialogs[0]['id']}/messages", headers=owner.account.headers)
    rows = r.json()["items"]
    assert [(m["role"], m["status"]) for m in rows] == [
        ("user", "completed"), ("assistant", "completed"), ("user", "completed"), ("assistant", "completed")
    ]  # fmt: skip
    assert rows[-1]["content"] == text
    r = await http.get("/api/analytics/usage", params={"granularity": "day"}, headers=owner.account.headers)
    (usage,) = r.json()["items"]
    assert (usage["assistant_id"], usage["dialogs"], usage["completion_tokens"]) == (
        owner.assistant_id,
        2,
        16,
    )


async def test_errors_raise_the_sdks_own_exceptions(
    http: httpx.AsyncClient, v1_stack: Stack, database_url: str
) -> None:
    owner = await owner_with_key(http, "errors")
    other = await owner_with_key(http, "other-tenant")
    question: Any = [{"role": "user", "content": "hi [[tokens:3]]"}]
    client = async_sdk(v1_stack, owner.key)

    for bad_key in ("cak_not-a-real-key-at-all", owner.account.access_token, owner.key[:-2] + "xx"):
        with pytest.raises(openai.AuthenticationError) as caught:
            await async_sdk(v1_stack, bad_key).models.list()
        assert caught.value.code == "invalid_api_key"
    r = await http.get("/v1/models")
    error = r.json()["error"]
    assert r.status_code == 401 and set(error) == {"message", "type", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
    # A key is not a user session: /api refuses it.
    r = await http.get("/api/users/me", headers={"Authorization": f"Bearer {owner.key}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"

    for model in (str(uuid.uuid4()), other.assistant_id, "gpt-4o"):
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model=model, messages=question)
        assert caught.value.code == "model_not_found"

    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=owner.assistant_id, messages=[{"role": "assistant", "content": "last"}]
        )
    assert caught.value.code == "invalid_request_error"
    with pytest.raises(openai.UnprocessableEntityError) as unprocessable:
        await client.chat.completions.create(model=owner.assistant_id, messages=question, temperature=5)
    assert (
        unprocessable.value.code == "invalid_request_error" and "temperature" in unprocessable.value.message
    )

    sql(database_url, "UPDATE balances SET balance_micros = 0 WHERE user_id = %s", owner.account.user_id)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model=owner.assistant_id, messages=question, stream=True)
    assert refused.value.status_code == 402 and refused.value.code == "insufficient_balance"
    # Nothing was written for the refused requests.
    r = await http.get("/api/dialogs", headers=owner.account.headers)
    assert r.json()["items"] == []


async def test_a_key_restricted_to_one_assistant_sees_and_uses_only_that_one(
    http: httpx.AsyncClient, v1_stack: Stack
) -> None:
    owner = await owner_with_key(http, "restricted")
    r = await http.post("/api/assistants", json={"name": "Second"}, headers=owner.account.headers)
    second = r.json()["id"]
    r = await http.post(
        "/api/api-keys", json={"name": "only second", "assistant_id": second}, headers=owner.account.headers
    )
    assert r.status_code == 201 and r.json()["assistant_id"] == second
    client = async_sdk(v1_stack, r.json()["key"])
    assert [m.id async for m in client.models.list()] == [second]
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model=owner.assistant_id, messages=[{"role": "user", "content": "hi"}]
        )
    answer = await client.chat.completions.create(
        model=second, messages=[{"role": "user", "content": "hi [[tokens:3]]"}]
    )
    assert answer.choices[0].message.content == "Echo: hi lorem"


async def test_each_key_has_its_own_rate_limit(http: httpx.AsyncClient, v1_stack: Stack) -> None:
    owner = await owner_with_key(http, "limited")
    client = async_sdk(v1_stack, owner.key)
    for _ in range(KEY_RATE_LIMIT):
        await client.models.list()
    with pytest.raises(openai.RateLimitError) as caught:
        await client.models.list()
    assert caught.value.code == "rate_limited"
    assert int(caught.value.response.headers["retry-after"]) >= 1
    # Another key of the same owner is not limited by it.
    r = await http.post("/api/api-keys", json={"name": "second"}, headers=owner.account.headers)
    assert len((await async_sdk(v1_stack, r.json()["key"]).models.list()).data) == 1


async def test_revoking_a_key_ends_its_open_stream(
    http: httpx.AsyncClient, v1_stack: Stack, database_url: str
) -> None:
    owner = await owner_with_key(http, "revoked")
    client = async_sdk(v1_stack, owner.key)
    stream = await client.chat.completions.create(**slow_request(owner.assistant_id), stream=True)
    first = await anext(aiter(stream))
    reply_id = reply_id_of(first.id)
    r = await http.delete(f"/api/api-keys/{owner.key_id}", headers=owner.account.headers)
    assert r.status_code == 204
    received = 1
    with pytest.raises(openai.APIError) as caught:
        async with asyncio.timeout(10):  # the reply alone would stream for 20 s
            async for _ in stream:
                received += 1
    assert caught.value.code == "invalid_api_key"
    assert received < 400
    # The stream's reply is stopped too, and the key no longer works.
    await wait_cancelled(database_url, reply_id)
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()


async def test_a_client_that_disconnects_cancels_its_reply(
    http: httpx.AsyncClient, v1_stack: Stack, database_url: str
) -> None:
    owner = await owner_with_key(http, "leaver")
    body = {**slow_request(owner.assistant_id), "stream": True}
    headers = {"Authorization": f"Bearer {owner.key}"}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                reply_id = reply_id_of(httpx.Response(200, content=line[6:]).json()["id"])
                break
    # Leaving the block closed the connection mid-stream.
    await wait_cancelled(database_url, reply_id)


async def test_a_whole_answer_waits_while_the_client_stays_and_is_cancelled_when_it_leaves(
    http: httpx.AsyncClient, v1_stack: Stack, database_url: str
) -> None:
    owner = await owner_with_key(http, "impatient")
    body = slow_request(owner.assistant_id)
    with pytest.raises(httpx.ReadTimeout):
        await http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {owner.key}"}, timeout=1.5
        )
    (reply_id,), *_ = sql(
        database_url,
        "SELECT m.id::text FROM messages m JOIN dialogs d ON d.id = m.dialog_id "
        "WHERE d.owner_id = %s AND m.role = 'assistant'",
        owner.account.user_id,
    )
    await wait_cancelled(database_url, reply_id)


async def test_api_keys_are_shown_once_listed_without_the_key_audited_and_tenant_scoped(
    http: httpx.AsyncClient, v1_stack: Stack, database_url: str
) -> None:
    owner = await owner_with_key(http, "keys")
    other = await signup(http, "keys-other")
    r = await http.get("/api/api-keys", headers=owner.account.headers)
    (listed,) = r.json()["items"]
    assert listed["id"] == owner.key_id and "key" not in listed and owner.key.startswith(listed["prefix"])
    assert listed["last_used_at"] is None
    assert owner.key not in r.text
    await async_sdk(v1_stack, owner.key).models.list()
    r = await http.get("/api/api-keys", headers=owner.account.headers)
    assert r.json()["items"][0]["last_used_at"] is not None

    # Only the lookup prefix and a hash are stored.
    ((prefix, key_hash),) = sql(
        database_url, "SELECT prefix, key_hash FROM api_keys WHERE id = %s", owner.key_id
    )
    assert owner.key.startswith(prefix) and owner.key not in key_hash and len(key_hash) == 64

    # Another tenant's assistant cannot be the restriction, nor their key listed or revoked.
    r = await http.post(
        "/api/api-keys", json={"name": "x", "assistant_id": owner.assistant_id}, headers=other.headers
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await http.get("/api/api-keys", headers=other.headers)).json()["items"] == []
    r = await http.delete(f"/api/api-keys/{owner.key_id}", headers=other.headers)
    assert r.status_code == 404

    r = await http.delete(f"/api/api-keys/{owner.key_id}", headers=owner.account.headers)
    assert r.status_code == 204
    assert (await http.get("/api/api-keys", headers=owner.account.headers)).json()["items"] == []
    actions = sql(
        database_url,
        "SELECT action FROM audit_events WHERE actor_id = %s ORDER BY created_at",
        owner.account.user_id,
    )
    assert [a for (a,) in actions] == ["api_key_created", "api_key_revoked"]
    r = await http.delete(f"/api/api-keys/{owner.key_id}", headers=owner.account.headers)
    assert r.status_code == 404


NODE_CLIENT = Path(__file__).resolve().parents[1] / "node"


def npm_ci() -> None:
    """Install the locked ``openai`` npm package for the Node client."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the Node SDK cannot be installed")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_CLIENT, check=True, timeout=300)


async def test_the_official_node_sdk(http: httpx.AsyncClient, v1_stack: Stack) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node SDK test needs Node >= 18")
    if not (NODE_CLIENT / "node_modules" / "openai").is_dir():
        await asyncio.to_thread(npm_ci)
    owner = await owner_with_key(http, "node")
    other = await owner_with_key(http, "node-other")
    env = {
        **os.environ,
        "CHATAI_BASE_URL": v1_stack.base_url,
        "CHATAI_API_KEY": owner.key,
        "CHATAI_MODEL": owner.assistant_id,
        "CHATAI_OTHER_MODEL": other.assistant_id,
    }
    done = await asyncio.to_thread(
        subprocess.run, [node, "v1_client.mjs"], cwd=NODE_CLIENT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["models"] == [owner.assistant_id]
    assert seen["text"].startswith("Echo: hello from node") and seen["streamed"] == seen["text"]
    assert seen["usage"]["completion_tokens"] == 10
    assert seen["errors"] == {
        "bad_key": "AuthenticationError", "unknown_model": "NotFoundError", "other_tenant": "NotFoundError"
    }  # fmt: skip


def readme_examples() -> dict[str, str]:
    """The code blocks of the README's /v1 section, by language."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## API keys and the OpenAI-compatible API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    return dict(blocks)


async def test_the_readme_examples_run_as_written(http: httpx.AsyncClient, v1_stack: Stack) -> None:
    owner = await owner_with_key(http, "readme")
    examples = readme_examples()
    assert set(examples) == {"sh", "python", "js"}
    env = {**os.environ, "CHATAI": v1_stack.base_url, "TOKEN": owner.account.access_token,
           "ASSISTANT_ID": owner.assistant_id, "CHATAI_KEY": owner.key}  # fmt: skip

    def run(argv: list[str], script: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            argv, input=script, env=env, cwd=cwd, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = await asyncio.to_thread(run, ["bash", "-euo", "pipefail"], examples["sh"])
    assert owner.assistant_id in out and "Echo: Hello!" in out and "data: [DONE]" in out
    out = await asyncio.to_thread(run, [sys.executable, "-"], examples["python"])
    assert out.startswith("Echo: What do you know") and "tokens]" in out
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the README's Node example is not run")
    if not (NODE_CLIENT / "node_modules" / "openai").is_dir():
        await asyncio.to_thread(npm_ci)
    out = await asyncio.to_thread(run, [node, "--input-type=module"], examples["js"], NODE_CLIENT)
    assert out.startswith("Echo: Hello!")
