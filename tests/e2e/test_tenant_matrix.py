"""The tenant-isolation matrix, generated from the app's own OpenAPI document.

Every operation whose path, JSON body or optional query filter (``?assistant_id=``) names a resource id
is called with user A's real ids by each kind of caller that must not reach A's data: another user, an
operator not assigned to A's assistant, a widget session of A's other assistant, a user demoted from
operator. Each answer must be ``404 not_found`` (``403`` for a role the caller lacks, ``401`` for a
widget token outside its endpoints) without any of A's data, and A's rows must be unchanged in the
database afterwards. Every protected operation without credentials must be ``401``. The routes hidden
from the OpenAPI document are listed here with their checks. A new route whose id the matrix cannot
fill, a new hidden route, or a new route without authentication, fails the suite until it is added here
(with a reason when it is deliberately not tenant-scoped).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures.api import Account, WsClient, assign_operator, poll_reply, post_message, signup
from tests.fixtures.billing import make_admin
from tests.fixtures.database import sql
from tests.fixtures.openapi_calls import ADMIN_PREFIX, Call, calls, owned_rows
from tests.fixtures.routes import built_app, hidden_routes
from tests.fixtures.stack import Stack, running_stack

SECRET = f"tenant-a-secret-{uuid.uuid4().hex[:8]}"
SHOP = "https://shop.example"

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

# Query filters only admins may pass: anyone else is refused (403) whatever the id, so the answer says
# nothing about the id.
ADMIN_QUERY_FILTERS: dict[tuple[str, str, str], str] = {
    ("GET", "/api/analytics/usage", "user_id"): "admins read any user's usage; owners their own",
}

# Routes without a tenant's id that answer every signed-in user the same platform-wide data, and why.
SHARED_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/api/models"): "the priced chat models any owner may choose; no tenant's data",
}

# The OpenAI-compatible API: authenticated by API keys, never by a user's or a widget's token (401
# invalid_api_key, in OpenAI's error shape). Its tenant isolation (another tenant's assistant as the
# model is 404 model_not_found) is tested in test_v1_api.py, as the model is named in the body.
OPENAI_PREFIX = "/v1/"

# The routes a widget session token may call, for its own dialog only; every other route answers it 401.
WIDGET_ROUTES = {
    ("GET", "/api/dialogs/{dialog_id}"),
    ("GET", "/api/dialogs/{dialog_id}/messages"),
    ("POST", "/api/dialogs/{dialog_id}/messages"),
    ("GET", "/api/messages/{message_id}"),
}

Expected = Callable[[Call], tuple[int, str]]


@dataclass
class TenantA:
    account: Account
    ids: dict[str, list[str]]  # path, query or body parameter name -> A's real ids of that kind
    public_key: str  # of the assistant in ``ids``
    other_assistant_id: str  # A's second assistant, with none of the resources above
    other_public_key: str  # its widget is open to SHOP


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {**stack_env, "CHATAI_LLM_PROVIDER": "offline", "CHATAI_OFFLINE_TOKEN_DELAY_MS": "0"}
    with running_stack(env, log_dir) as system:  # type: ignore[arg-type]
        yield system


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=15) as client:
        yield client


@pytest.fixture
async def spec(http: httpx.AsyncClient) -> dict[str, Any]:
    return (await http.get("/api/openapi.json")).json()


async def tenant_a(http: httpx.AsyncClient, database_url: str) -> TenantA:
    """A user with one of every resource, each carrying ``SECRET``, and a second, empty assistant."""
    a = await signup(http, "tenant-a")
    r = await http.post("/api/assistants", json={"name": SECRET, "system_prompt": SECRET}, headers=a.headers)
    assert r.status_code == 201, r.text
    assistant_id, public_key = r.json()["id"], r.json()["public_key"]
    r = await http.post(
        "/api/dialogs", json={"assistant_id": assistant_id, "title": SECRET}, headers=a.headers
    )
    assert r.status_code == 201, r.text
    dialog_id = r.json()["id"]
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
    r = await http.post(
        "/api/api-keys", json={"name": SECRET, "assistant_id": assistant_id}, headers=a.headers
    )
    assert r.status_code == 201, r.text
    api_key_id = r.json()["id"]
    r = await http.get("/api/balance/transactions", headers=a.headers)
    transaction_ids = [t["id"] for t in r.json()["items"]]
    assert transaction_ids, "the signup credit is A's first transaction"
    r = await http.post(
        "/api/assistants", json={"name": "Other", "widget_allowed_origins": [SHOP]}, headers=a.headers
    )
    assert r.status_code == 201, r.text
    other = r.json()
    tenant = TenantA(
        a,
        {
            "assistant_id": [assistant_id],
            "dialog_id": [dialog_id],
            "message_id": [posted["message"]["id"], posted["reply"]["id"]],
            "document_id": [document_id],
            "transaction_id": transaction_ids[:1],
            "user_id": [a.user_id],
            "model": ["*"],
            "api_key_id": [api_key_id],
        },
        public_key,
        other["id"],
        other["public_key"],
    )
    tenant.ids["bot_id"] = [telegram_bot(database_url, tenant)]
    tenant.ids["invitation_id"] = [await operator_invitation(http, database_url, tenant)]
    return tenant


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


async def operator_invitation(http: httpx.AsyncClient, database_url: str, a: TenantA) -> str:
    """An invitation from A to an operator of A's, still pending."""
    op = await signup(http, "tenant-a-operator")
    sql(database_url, "UPDATE users SET role = 'operator' WHERE id = %s", op.user_id)
    r = await http.post(
        f"/api/assistants/{a.ids['assistant_id'][0]}/operator-invitations",
        json={"email": op.email},
        headers=a.account.headers,
    )
    assert r.status_code == 202, r.text
    (invitation,) = (await http.get("/api/operator-invitations", headers=op.headers)).json()["items"]
    return str(invitation["id"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(http: httpx.AsyncClient, account: Account) -> Account:
    r = await http.post("/api/auth/login", json={"email": account.email, "password": account.password})
    assert r.status_code == 200, r.text
    tokens = r.json()
    return dataclasses.replace(
        account, access_token=tokens["access_token"], refresh_token=tokens["refresh_token"]
    )


async def an_admin(http: httpx.AsyncClient, database_url: str, name: str = "admin") -> Account:
    admin = await signup(http, name)
    make_admin(database_url, admin.user_id)
    return admin


async def set_role(http: httpx.AsyncClient, admin: Account, account: Account, role: str) -> Account:
    """Change ``account``'s role through the admin API; returns it logged in again (the change refuses
    every earlier token)."""
    r = await http.patch(f"/api/admin/users/{account.user_id}", json={"role": role}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["role"] == role, r.text
    return await login(http, account)


async def an_operator(http: httpx.AsyncClient, admin: Account, owner: Account, assistant_id: str) -> Account:
    operator = await set_role(http, admin, await signup(http, "operator"), "operator")
    await assign_operator(http, owner, assistant_id, operator)
    return operator


def role_refusal(call: Call) -> tuple[int, str]:
    """What a caller without the admin role gets for a call with A's ids."""
    if call.route.startswith(ADMIN_PREFIX) or (call.method, call.route, call.query_id) in ADMIN_QUERY_FILTERS:
        return 403, "forbidden"
    return 404, "not_found"


def widget_refusal(call: Call) -> tuple[int, str]:
    """What a widget session token gets for a call with A's ids (or with none)."""
    return (404, "not_found") if (call.method, call.route) in WIDGET_ROUTES else (401, "unauthorized")


def _answer(r: httpx.Response) -> tuple[int, str | None]:
    try:
        return r.status_code, r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return r.status_code, None


async def sweep(
    http: httpx.AsyncClient,
    spec: dict[str, Any],
    a: TenantA,
    headers: dict[str, str],
    expected: Expected,
    every_route: bool = False,
) -> set[tuple[str, str, str | None]]:
    """Call every generated operation naming A's resources (``every_route``: every protected one) with
    ``headers``; each answer must be the expected refusal, without A's data. Returns what was called."""
    uncovered: list[str] = []
    checked = set()
    for call in calls(spec, a.ids, uncovered, NOT_TENANT_SCOPED):
        route = (call.method, call.route)
        if route in NOT_TENANT_SCOPED or route in PUBLIC_ROUTES:
            continue
        if not (call.names_a_resource or every_route):
            continue
        r = await http.request(call.method, call.path, headers=headers, **call.kwargs)
        want = (401, "invalid_api_key") if call.route.startswith(OPENAI_PREFIX) else expected(call)
        assert _answer(r) == want, (str(call), r.text)
        assert SECRET not in r.text, str(call)
        checked.add((call.method, call.route, call.query_id))
    assert not uncovered, (
        "routes the tenant matrix cannot fill (give it tenant A's id of that kind in tenant_a(), "
        f"or list the route in NOT_TENANT_SCOPED with a reason): {uncovered}"
    )
    return checked


@contextmanager
def rows_unchanged(database_url: str, a: TenantA) -> Iterator[None]:
    before = owned_rows(database_url, a.account.user_id)
    yield
    assert owned_rows(database_url, a.account.user_id) == before, "the calls changed A's rows"


async def a_still_sees_its_rows(http: httpx.AsyncClient, a: TenantA) -> None:
    for kind in ("assistant_id", "dialog_id", "document_id"):
        resource = kind.removesuffix("_id") + "s"
        r = await http.get(f"/api/{resource}/{a.ids[kind][0]}", headers=a.account.headers)
        assert r.status_code == 200 and SECRET in r.text, (kind, r.text)


async def ws_refuses(stack: Stack, token: str, *topics: str) -> None:
    """Each topic's subscribe answers not_found, nothing is replayed, and the socket stays usable."""
    async with WsClient(stack.ws_url, token) as ws:
        for topic in topics:
            await ws.send({"type": "subscribe", "topic": topic, "last_event_id": "0"})
            frame = await ws.recv()
            assert frame["type"] == "error" and frame["code"] == "not_found", (topic, frame)
        await ws.send({"type": "ping"})
        assert (await ws.recv())["type"] == "pong"
        assert not any(SECRET in str(f) for f in ws.frames)


async def refused_everywhere(
    http: httpx.AsyncClient,
    spec: dict[str, Any],
    stack: Stack,
    database_url: str,
    a: TenantA,
    token: str,
    expected: Expected,
    every_route: bool = False,
    topics: tuple[str, ...] = (),
) -> set[tuple[str, str, str | None]]:
    """The sweep with ``token``, leaving A's rows unchanged and A's own access intact; over the WebSocket
    A's dialog topic (and ``topics``) is not_found for the token, and nothing is replayed."""
    with rows_unchanged(database_url, a):
        checked = await sweep(http, spec, a, bearer(token), expected, every_route)
    await a_still_sees_its_rows(http, a)
    await ws_refuses(stack, token, f"dialog:{a.ids['dialog_id'][0]}", *topics)
    return checked


def routes_of(checked: set[tuple[str, str, str | None]]) -> set[tuple[str, str]]:
    return {(method, route) for method, route, _ in checked}


DIALOG_ROUTES = {
    ("GET", "/api/dialogs/{dialog_id}"),
    ("GET", "/api/dialogs/{dialog_id}/messages"),
    ("POST", "/api/dialogs/{dialog_id}/messages"),
    ("GET", "/api/messages/{message_id}"),
    ("POST", "/api/messages/{message_id}/cancel"),
    ("POST", "/api/dialogs/{dialog_id}/takeover"),
    ("POST", "/api/dialogs/{dialog_id}/release"),
    ("POST", "/api/dialogs/{dialog_id}/operator-messages"),
}


async def test_user_b_gets_404_for_every_route_with_a_users_ids(
    http: httpx.AsyncClient, spec: dict[str, Any], stack: Stack, database_url: str
) -> None:
    a = await tenant_a(http, database_url)
    b = await signup(http, "tenant-b")
    checked = await refused_everywhere(http, spec, stack, database_url, a, b.access_token, role_refusal)
    # The matrix really ran over the resource routes, including the destructive ones and the filters.
    assert len(checked) >= 15, checked
    assert {
        ("DELETE", "/api/api-keys/{api_key_id}", None),
        ("DELETE", "/api/assistants/{assistant_id}", None),
        ("POST", "/api/assistants/{assistant_id}/rotate-public-key", None),
        ("POST", "/api/assistants/{assistant_id}/operator-invitations", None),
        ("POST", "/api/operator-invitations/{invitation_id}/accept", None),
        ("DELETE", "/api/operator-invitations/{invitation_id}", None),
        ("DELETE", "/api/documents/{document_id}", None),
        ("POST", "/api/dialogs/{dialog_id}/messages", None),
        ("POST", "/api/dialogs", None),
        ("GET", "/api/dialogs", "assistant_id"),
        ("GET", "/api/analytics/usage", "assistant_id"),
        ("GET", "/api/analytics/usage", "user_id"),
    } <= checked
    assert routes_of(checked) >= DIALOG_ROUTES
    for (method, route), _reason in SHARED_ROUTES.items():
        r = await http.request(method, route, headers=b.headers)
        assert r.status_code == 200 and SECRET not in r.text, (method, route, r.text)
        assert r.json() == (await http.request(method, route, headers=a.account.headers)).json()


async def test_an_operator_reaches_only_the_dialogs_of_assistants_they_are_assigned_to(
    http: httpx.AsyncClient, spec: dict[str, Any], stack: Stack, database_url: str
) -> None:
    a = await tenant_a(http, database_url)
    admin = await an_admin(http, database_url)
    operator = await an_operator(http, admin, a.account, a.other_assistant_id)
    # The operator's access is real: they read the dialogs of the assistant they answer for.
    other = {"assistant_id": a.other_assistant_id}
    r = await http.post("/api/dialogs", json=other, headers=a.account.headers)
    assert r.status_code == 201, r.text
    assigned_dialog = r.json()["id"]
    r = await http.get(f"/api/dialogs/{assigned_dialog}", headers=operator.headers)
    assert r.status_code == 200, r.text
    r = await http.get("/api/dialogs", params=other, headers=operator.headers)
    assert r.status_code == 200 and [d["id"] for d in r.json()["items"]] == [assigned_dialog], r.text
    r = await http.get("/api/dialogs", headers=operator.headers)
    assert [d["id"] for d in r.json()["items"]] == [assigned_dialog], "only the assigned assistant's dialogs"

    checked = await refused_everywhere(
        http, spec, stack, database_url, a, operator.access_token, role_refusal
    )
    assert routes_of(checked) >= DIALOG_ROUTES
    assert ("GET", "/api/dialogs", "assistant_id") in checked


async def test_a_widget_token_reaches_its_own_dialog_and_nothing_else(
    http: httpx.AsyncClient, spec: dict[str, Any], stack: Stack, database_url: str
) -> None:
    a = await tenant_a(http, database_url)
    # A session of A's own other assistant: the same owner, so only the token's dialog scope stands
    # between it and A's dialog.
    r = await http.post(f"/api/widget/{a.other_public_key}/sessions", headers={"Origin": SHOP})
    assert r.status_code == 201, r.text
    token, own_dialog = r.json()["session_token"], r.json()["dialog_id"]
    for path in (f"/api/dialogs/{own_dialog}", f"/api/dialogs/{own_dialog}/messages"):
        assert (await http.get(path, headers=bearer(token))).status_code == 200, path

    checked = await refused_everywhere(
        http, spec, stack, database_url, a, token, widget_refusal, every_route=True, topics=("user",)
    )
    assert routes_of(checked) > WIDGET_ROUTES
    assert {("GET", "/api/assistants/{assistant_id}"), ("GET", "/api/balance"), ("GET", "/api/users/me")} < (
        routes_of(checked)
    ), "owner routes answer the widget token 401"
    async with WsClient(stack.ws_url, token) as ws:
        await ws.subscribe(f"dialog:{own_dialog}")


async def test_a_demoted_admin_loses_the_admin_routes_at_once(
    http: httpx.AsyncClient, spec: dict[str, Any], database_url: str
) -> None:
    admin = await an_admin(http, database_url)
    deputy = await an_admin(http, database_url, "deputy")
    ids = {"user_id": [deputy.user_id]}
    admin_calls = [
        c for c in calls(spec, ids, [], NOT_TENANT_SCOPED)
        if c.route.startswith(ADMIN_PREFIX) or (c.method, c.route, c.query_id) in ADMIN_QUERY_FILTERS
    ]  # fmt: skip
    assert len({(c.method, c.route) for c in admin_calls}) >= 10
    for call in admin_calls:
        if call.method == "GET":
            r = await http.get(call.path, headers=deputy.headers, **call.kwargs)
            assert r.status_code not in (401, 403), (str(call), r.text)

    demoted = await set_role(http, admin, deputy, "user")
    for call in admin_calls:
        r = await http.request(call.method, call.path, headers=deputy.headers, **call.kwargs)
        assert _answer(r) == (401, "unauthorized"), ("the admin's earlier token", str(call), r.text)
        r = await http.request(call.method, call.path, headers=demoted.headers, **call.kwargs)
        assert _answer(r) == (403, "forbidden"), ("a token issued after the demotion", str(call), r.text)


async def test_a_demoted_operator_loses_dialog_access(
    http: httpx.AsyncClient, spec: dict[str, Any], stack: Stack, database_url: str
) -> None:
    a = await tenant_a(http, database_url)
    admin = await an_admin(http, database_url)
    operator = await an_operator(http, admin, a.account, a.ids["assistant_id"][0])
    dialog_id = a.ids["dialog_id"][0]
    # Assigned to A's assistant, the operator reads its dialog, its messages and its topic.
    for path in (f"/api/dialogs/{dialog_id}", f"/api/dialogs/{dialog_id}/messages"):
        r = await http.get(path, headers=operator.headers)
        assert r.status_code == 200 and SECRET in r.text, (path, r.text)
    async with WsClient(stack.ws_url, operator.access_token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")

    demoted = await set_role(http, admin, operator, "user")
    r = await http.get(f"/api/dialogs/{dialog_id}", headers=operator.headers)
    assert _answer(r) == (401, "unauthorized"), "the operator's earlier token"
    checked = await refused_everywhere(http, spec, stack, database_url, a, demoted.access_token, role_refusal)
    assert routes_of(checked) >= DIALOG_ROUTES


# --- The routes hidden from the OpenAPI document, each with its check. ---

HiddenCheck = Callable[[httpx.AsyncClient, Stack, TenantA, Account], Awaitable[None]]


async def _websocket(http: httpx.AsyncClient, stack: Stack, a: TenantA, admin: Account) -> None:
    """The WebSocket: without a token the socket is refused; other tenants' topics are not_found (every
    caller of the tests above subscribes to A's dialog)."""
    async with WsClient(stack.ws_url, "not-a-token") as ws:
        frame = await ws.recv()
        assert frame["type"] == "error" and frame["code"] == "unauthorized", frame
    b = await signup(http, "ws-peer")
    await ws_refuses(stack, b.access_token, f"dialog:{a.ids['dialog_id'][0]}", f"dialog:{uuid.uuid4()}")


async def _widget_page(http: httpx.AsyncClient, stack: Stack, a: TenantA, admin: Account) -> None:
    """The iframe page is public for a live key and shows none of the owner's data; an unknown key, a
    deleted assistant's key and a disabled owner's key are 404, as for the widget's sessions."""
    r = await http.get(f"/widget/{a.public_key}")
    assert r.status_code == 200 and SECRET not in r.text, r.text
    c = await signup(http, "widget-owner")
    keys = []
    for _ in range(2):
        r = await http.post(
            "/api/assistants", json={"name": SECRET, "widget_allowed_origins": [SHOP]}, headers=c.headers
        )
        assert r.status_code == 201, r.text
        keys.append((r.json()["id"], r.json()["public_key"]))
    (deleted_id, deleted_key), (_, disabled_key) = keys
    assert (await http.delete(f"/api/assistants/{deleted_id}", headers=c.headers)).status_code == 204
    r = await http.patch(f"/api/admin/users/{c.user_id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    for key in ("pk_nobody_has_this_key", deleted_key, disabled_key):
        for r in (
            await http.get(f"/widget/{key}"),
            await http.post(f"/api/widget/{key}/sessions", headers={"Origin": SHOP}),
        ):
            assert _answer(r) == (404, "not_found"), (key, r.text)
            assert SECRET not in r.text


async def _widget_script(http: httpx.AsyncClient, stack: Stack, a: TenantA, admin: Account) -> None:
    """The widget's script: one static file, the same for everyone."""
    r = await http.get("/widget.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert SECRET not in r.text


async def _metrics(http: httpx.AsyncClient, stack: Stack, a: TenantA, admin: Account) -> None:
    """Prometheus text (kept from the public by the proxy): labels by route template and queue, never
    a tenant's ids or data."""
    r = await http.get("/metrics")
    assert r.status_code == 200 and "chatai_http_request_duration_seconds" in r.text
    for value in (SECRET, a.account.user_id, *a.ids["assistant_id"], *a.ids["dialog_id"]):
        assert value not in r.text, value


HIDDEN_ROUTES: dict[tuple[str, str], HiddenCheck] = {
    ("GET", "/api/ws"): _websocket,
    ("GET", "/widget/{public_key}"): _widget_page,
    ("GET", "/widget.js"): _widget_script,
    ("GET", "/metrics"): _metrics,
}


async def test_routes_hidden_from_openapi_are_covered(
    http: httpx.AsyncClient, stack: Stack, database_url: str
) -> None:
    with built_app() as app:
        hidden = hidden_routes(app)
    unchecked = hidden - set(HIDDEN_ROUTES)
    assert not unchecked, (
        f"routes hidden from the OpenAPI document without a check in HIDDEN_ROUTES: {unchecked}"
    )
    assert hidden == set(HIDDEN_ROUTES), "HIDDEN_ROUTES lists a route the app no longer has"
    a = await tenant_a(http, database_url)
    admin = await an_admin(http, database_url)
    for check in HIDDEN_ROUTES.values():
        await check(http, stack, a, admin)


async def test_every_protected_route_is_401_without_credentials(
    http: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    ids = {name: [str(uuid.uuid4())] for name in ("assistant_id", "dialog_id", "message_id",
                                                    "document_id", "transaction_id", "user_id",
                                                    "bot_id", "api_key_id",
                                                    "invitation_id")}  # fmt: skip
    ids["model"] = ["*"]
    unlisted_public = []
    protected = 0
    for call in calls(spec, ids, [], NOT_TENANT_SCOPED):
        operation = spec["paths"][call.route][call.method.lower()]
        if not operation.get("security"):
            if (call.method, call.route) not in PUBLIC_ROUTES:
                unlisted_public.append(f"{call.method} {call.route}")
            continue
        protected += 1
        r = await http.request(call.method, call.path, **call.kwargs)
        assert r.status_code == 401, (call.method, call.path, r.text)
        unauthorized = "invalid_api_key" if call.route.startswith(OPENAI_PREFIX) else "unauthorized"
        assert r.json()["error"]["code"] == unauthorized
        r = await http.request(
            call.method, call.path, headers={"Authorization": "Bearer not-a-token"}, **call.kwargs
        )
        assert r.status_code == 401, (call.method, call.path, r.text)
    assert not unlisted_public, (
        f"routes without authentication that PUBLIC_ROUTES does not list: {unlisted_public}"
    )
    assert protected >= 20
