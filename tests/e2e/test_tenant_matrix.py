"""The tenant-isolation matrix, generated from the app's own OpenAPI document.

Every operation whose path (or JSON body) names a resource id is called by user B with user A's real
ids: each answer must be ``404 not_found`` without any of A's data, and A's rows must be unchanged in
the database afterwards. Every protected operation without credentials must be ``401``. A new route
whose path id the matrix cannot fill, or a new route without authentication, fails the suite until it
is added here (with a reason when it is deliberately not tenant-scoped).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures.api import Account, WsClient, new_assistant, open_dialog, poll_reply, post_message, signup
from tests.fixtures.database import sql
from tests.fixtures.stack import Stack, running_stack

SECRET = f"tenant-a-secret-{uuid.uuid4().hex[:8]}"

# Routes that answer without a user's token, and why.
PUBLIC_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/health/live"): "liveness probe",
    ("GET", "/health/ready"): "readiness probe",
    ("POST", "/api/auth/register"): "creates the account",
    ("POST", "/api/auth/login"): "issues the tokens",
    ("POST", "/api/auth/refresh"): "authenticated by the refresh token it carries",
    ("POST", "/api/payments/stripe/webhook"): "called by Stripe; authenticated by the signature header",
    ("POST", "/api/telegram/webhook/{bot_id}"): "called by Telegram; authenticated by its secret header",
}

# Routes with a path id that are deliberately not tenant-scoped, and why.
NOT_TENANT_SCOPED: dict[tuple[str, str], str] = {
    ("POST", "/api/telegram/webhook/{bot_id}"): "Telegram's caller proves itself with the bot's secret",
    # The public key is published on the owner's pages; anyone may open a session from a listed origin.
    ("POST", "/api/widget/{public_key}/sessions"): "public by design: anonymous visitors of the widget",
}

# Role-gated routes: a plain user (B) is refused with 403 whatever the id.
ADMIN_PREFIX = "/api/admin/"


@dataclass
class TenantA:
    account: Account
    ids: dict[str, list[str]]  # path or body parameter name -> A's real ids of that kind


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {**stack_env, "CHATAI_LLM_PROVIDER": "offline", "CHATAI_OFFLINE_TOKEN_DELAY_MS": "0"}
    with running_stack(env, log_dir) as system:  # type: ignore[arg-type]
        yield system


async def tenant_a(http: httpx.AsyncClient) -> TenantA:
    """A user with one of every resource, each carrying ``SECRET``."""
    a = await signup(http, "tenant-a")
    assistant_id = await new_assistant(http, a, name=SECRET, system_prompt=SECRET)
    dialog_id = await open_dialog(http, a, assistant_id, title=SECRET)
    posted = await post_message(http, a, dialog_id, SECRET)
    reply = await poll_reply(http, a, posted["reply"]["id"])
    assert reply["status"] == "completed", reply
    r = await http.post(
        f"/api/assistants/{assistant_id}/documents",
        files={"file": (f"{SECRET}.txt", f"{SECRET} document".encode(), "text/plain")},
        headers=a.headers,
    )
    assert r.status_code == 202, r.text
    document_id = r.json()["id"]
    r = await http.get("/api/balance/transactions", headers=a.headers)
    transaction_ids = [t["id"] for t in r.json()["items"]]
    assert transaction_ids, "the signup credit is A's first transaction"
    return TenantA(
        a,
        {
            "assistant_id": [assistant_id],
            "dialog_id": [dialog_id],
            "message_id": [posted["message"]["id"], posted["reply"]["id"]],
            "document_id": [document_id],
            "transaction_id": transaction_ids[:1],
            "user_id": [a.user_id],
            "model": ["*"],
        },
    )


def telegram_bot(database_url: str, a: TenantA) -> str:
    """A Telegram bot row of A's (written directly: connecting one through the API needs Telegram)."""
    (bot_id,), *_ = sql(
        database_url,
        """INSERT INTO telegram_bots (id, owner_id, assistant_id, telegram_id, username, token_encrypted,
                                      webhook_secret, status, pending_update_count, updated_at)
           VALUES (gen_random_uuid(), %s, %s, (random() * 1e12)::bigint, %s, '\\x00', %s, 'active', 0, now())
           RETURNING id::text""",
        a.account.user_id,
        a.ids["assistant_id"][0],
        SECRET,
        SECRET,
    )
    return str(bot_id)


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def sample(spec: dict[str, Any], schema: dict[str, Any], name: str, ids: dict[str, list[str]]) -> Any:
    """A valid value for ``schema``; id fields get A's ids so the body itself points at A's rows."""
    schema = _resolve(spec, schema)
    if name in ids and schema.get("format") == "uuid":
        return ids[name][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if _resolve(spec, s).get("type") != "null"]
            return sample(spec, options[0], name, ids)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        return {
            field: sample(spec, sub, field, ids)
            for field, sub in schema.get("properties", {}).items()
            if field in schema.get("required", [])
        }
    if kind == "array":
        return [sample(spec, schema.get("items", {}), name, ids)] * schema.get("minItems", 0)
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), int(schema.get("exclusiveMinimum", 0)) + 1)
    if kind == "number":
        return schema.get("minimum", 0.5)
    if kind == "boolean":
        return True
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if schema.get("format") == "email":
        return "someone@example.com"
    return "x" * max(1, int(schema.get("minLength", 1)))


@dataclass(frozen=True)
class Call:
    method: str
    route: str
    path: str
    kwargs: dict[str, Any]
    names_a_resource: bool  # a path id or a body id of A's


def calls(spec: dict[str, Any], tenant_ids: dict[str, list[str]], uncovered: list[str]) -> Iterator[Call]:
    for route, operations in spec["paths"].items():
        for method, operation in operations.items():
            method = method.upper()
            params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
            ids = tenant_ids
            if route.startswith(ADMIN_PREFIX):
                # Role-gated: refused to a plain user whatever the id, so any well-formed value will do.
                ids = {**ids, **{p["name"]: [sample(spec, p.get("schema", {}), "", {})]
                                 for p in params if p["name"] not in ids}}  # fmt: skip
            missing = [p["name"] for p in params if p["name"] not in ids]
            if missing and (method, route) not in NOT_TENANT_SCOPED:
                uncovered.append(f"{method} {route}: path parameter(s) {missing}")
                continue
            if missing:
                continue
            kwargs: dict[str, Any] = {}
            query = {
                p["name"]: sample(spec, p.get("schema", {}), p["name"], ids)
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            if query:
                kwargs["params"] = query
            content = operation.get("requestBody", {}).get("content", {})
            body_names_a: bool = False
            if "application/json" in content:
                body = sample(spec, content["application/json"].get("schema", {}), "", ids)
                kwargs["json"] = body
                body_names_a = isinstance(body, dict) and any(
                    value in ids.get(field, []) for field, value in body.items()
                )
            elif "multipart/form-data" in content:
                kwargs["files"] = {"file": ("b.txt", b"tenant b was here", "text/plain")}
            names = [p["name"] for p in params]
            for values in itertools.product(*(ids[n] for n in names)):
                path = route
                for name, value in zip(names, values, strict=True):
                    path = path.replace("{" + name + "}", value)
                yield Call(method, route, path, kwargs, bool(names) or body_names_a)


def owned_rows(database_url: str, user_id: str) -> dict[str, str]:
    """A digest of every row A owns, in every table that has an ``owner_id`` (or ``user_id``)."""
    digests = {}
    tables = sql(
        database_url,
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = 'public' AND column_name IN ('owner_id', 'user_id')""",
    )
    for table, column in tables:
        (digest,), *_ = sql(
            database_url,
            f"SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) "
            f'FROM "{table}" t WHERE "{column}" = %s',
            user_id,
        )
        digests[f"{table}.{column}"] = digest
    (user_row,), *_ = sql(database_url, "SELECT u::text FROM users u WHERE id = %s", user_id)
    digests["users"] = user_row
    return digests


async def test_user_b_gets_404_for_every_route_with_a_users_ids(
    http: httpx.AsyncClient, stack: Stack, database_url: str
) -> None:
    a = await tenant_a(http)
    a.ids["bot_id"] = [telegram_bot(database_url, a)]
    b = await signup(http, "tenant-b")
    spec = (await http.get("/api/openapi.json")).json()
    before = owned_rows(database_url, a.account.user_id)

    uncovered: list[str] = []
    checked = set()
    for call in calls(spec, a.ids, uncovered):
        if not call.names_a_resource or (call.method, call.route) in NOT_TENANT_SCOPED:
            continue
        r = await http.request(call.method, call.path, headers=b.headers, **call.kwargs)
        expected = (403, "forbidden") if call.route.startswith(ADMIN_PREFIX) else (404, "not_found")
        assert (r.status_code, r.json()["error"]["code"]) == expected, (call.method, call.path, r.text)
        assert SECRET not in r.text, (call.method, call.path)
        checked.add((call.method, call.route))
    assert not uncovered, (
        "routes the tenant matrix cannot fill (give it tenant A's id of that kind in tenant_a(), "
        f"or list the route in NOT_TENANT_SCOPED with a reason): {uncovered}"
    )
    # The matrix really ran over the resource routes, including the destructive ones.
    assert len(checked) >= 15, checked
    assert {
        ("DELETE", "/api/assistants/{assistant_id}"),
        ("DELETE", "/api/documents/{document_id}"),
        ("POST", "/api/dialogs/{dialog_id}/messages"),
        ("POST", "/api/dialogs"),
    } <= checked

    assert owned_rows(database_url, a.account.user_id) == before, "B's calls changed A's rows"
    for kind in ("assistant_id", "dialog_id", "document_id"):
        resource = kind.removesuffix("_id") + "s"
        r = await http.get(f"/api/{resource}/{a.ids[kind][0]}", headers=a.account.headers)
        assert r.status_code == 200 and SECRET in r.text, (kind, r.text)

    # Over the WebSocket: A's dialog topic is not B's to subscribe to (and nothing is replayed).
    async with WsClient(stack.ws_url, b.access_token) as ws:
        await ws.send({"type": "subscribe", "topic": f"dialog:{a.ids['dialog_id'][0]}", "last_event_id": "0"})
        frame = await ws.recv()
        assert frame["type"] == "error" and frame["code"] == "not_found"
        await ws.send({"type": "ping"})
        assert (await ws.recv())["type"] == "pong"
        assert not any(SECRET in str(f) for f in ws.frames)


async def test_every_protected_route_is_401_without_credentials(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/api/openapi.json")).json()
    ids = {name: [str(uuid.uuid4())] for name in ("assistant_id", "dialog_id", "message_id",
                                                    "document_id", "transaction_id", "user_id",
                                                    "bot_id")}  # fmt: skip
    ids["model"] = ["*"]
    unlisted_public = []
    uncovered: list[str] = []
    protected = 0
    for call in calls(spec, ids, uncovered):
        operation = spec["paths"][call.route][call.method.lower()]
        if not operation.get("security"):
            if (call.method, call.route) not in PUBLIC_ROUTES:
                unlisted_public.append(f"{call.method} {call.route}")
            continue
        protected += 1
        r = await http.request(call.method, call.path, **call.kwargs)
        assert r.status_code == 401, (call.method, call.path, r.text)
        assert r.json()["error"]["code"] == "unauthorized"
        r = await http.request(
            call.method, call.path, headers={"Authorization": "Bearer not-a-token"}, **call.kwargs
        )
        assert r.status_code == 401, (call.method, call.path, r.text)
    assert not unlisted_public, (
        f"routes without authentication that PUBLIC_ROUTES does not list: {unlisted_public}"
    )
    assert protected >= 20
