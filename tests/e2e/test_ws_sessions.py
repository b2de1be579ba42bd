"""Open WebSockets lose their rights with their session: logout, deactivation, a role change, an
operator's unassignment and the end of a widget session close them (4001) within a second, subscribing
again is refused, every subscribe re-checks the session, and a socket closes when its token expires."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.fixtures.api import Account, WsClient, assign_operator, new_dialog, signup
from tests.fixtures.billing import make_admin, sql
from tests.fixtures.stack import Stack, running_stack

SHOP = "http://shop.example"
SHORT_TTL_SECONDS = 3
PROMPTLY = 1.0  # how soon after the HTTP call that revokes a session its sockets must be closed


@pytest.fixture(scope="module")
def ws_stack(stack_env: dict[str, str], log_dir: Any) -> Iterator[Stack]:
    with running_stack(stack_env, log_dir, workers=()) as system:
        yield system


@pytest.fixture
async def http(ws_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ws_stack.base_url, timeout=10) as client:
        yield client


async def closed(ws: WsClient, timeout: float = PROMPTLY) -> tuple[int, str]:
    """The close code and reason of a socket the server closes within ``timeout``."""
    with pytest.raises(websockets.ConnectionClosed) as error:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv(timeout)
    assert error.value.rcvd is not None, "the server closed the socket"
    return error.value.rcvd.code, error.value.rcvd.reason


async def refused(stack: Stack, token: str) -> int:
    """The close code a new socket with ``token`` gets."""
    async with WsClient(stack.ws_url, token) as ws:
        code, _ = await closed(ws, timeout=5)
        return code


async def admin(http: httpx.AsyncClient, database_url: str) -> Account:
    account = await signup(http, "admin")
    make_admin(database_url, account.user_id)
    return account


async def widget_token(http: httpx.AsyncClient, owner: Account) -> tuple[str, str, str]:
    """A widget session on a new assistant of ``owner``: (assistant id, dialog id, token)."""
    r = await http.post(
        "/api/assistants", json={"name": "Shop", "widget_allowed_origins": [SHOP]}, headers=owner.headers
    )
    assert r.status_code == 201, r.text
    assistant = r.json()
    r = await http.post(f"/api/widget/{assistant['public_key']}/sessions", headers={"Origin": SHOP})
    assert r.status_code == 201, r.text
    return assistant["id"], r.json()["dialog_id"], r.json()["session_token"]


async def test_logout_closes_the_socket_and_the_token_cannot_subscribe_again(
    http: httpx.AsyncClient, ws_stack: Stack
) -> None:
    account = await signup(http, "leaver")
    other = await http.post("/api/auth/login", json={"email": account.email, "password": account.password})
    async with (
        WsClient(ws_stack.ws_url, account.access_token) as ws,
        WsClient(ws_stack.ws_url, other.json()["access_token"]) as other_login,
    ):
        await ws.subscribe("user")
        await other_login.subscribe("user")
        r = await http.post(
            "/api/auth/logout", json={"refresh_token": account.refresh_token}, headers=account.headers
        )
        assert r.status_code == 204
        code, reason = await closed(ws)
        assert code == 4001 and reason.startswith("revoked"), reason
        # Another login of the same account keeps its socket.
        await other_login.send({"type": "ping"})
        assert (await other_login.recv())["type"] == "pong"
    assert await refused(ws_stack, account.access_token) == 4401


async def test_deactivation_closes_the_account_and_its_widget_sockets(
    http: httpx.AsyncClient, ws_stack: Stack, database_url: str
) -> None:
    boss = await admin(http, database_url)
    owner = await signup(http, "deactivated")
    _, dialog_id, visitor_token = await widget_token(http, owner)
    async with (
        WsClient(ws_stack.ws_url, owner.access_token) as ws,
        WsClient(ws_stack.ws_url, visitor_token) as visitor,
    ):
        await ws.subscribe("user")
        await visitor.subscribe(f"dialog:{dialog_id}")
        r = await http.patch(
            f"/api/admin/users/{owner.user_id}", json={"is_active": False}, headers=boss.headers
        )
        assert r.status_code == 200, r.text
        for socket in (ws, visitor):
            code, reason = await closed(socket)
            assert code == 4001 and reason.startswith("revoked"), reason
    assert await refused(ws_stack, owner.access_token) == 4401
    assert await refused(ws_stack, visitor_token) == 4401


async def test_a_role_change_closes_the_socket(
    http: httpx.AsyncClient, ws_stack: Stack, database_url: str
) -> None:
    boss = await admin(http, database_url)
    demoted = await signup(http, "demoted")
    make_admin(database_url, demoted.user_id)
    async with WsClient(ws_stack.ws_url, demoted.access_token) as ws:
        await ws.subscribe("user")
        r = await http.patch(
            f"/api/admin/users/{demoted.user_id}", json={"role": "user"}, headers=boss.headers
        )
        assert r.status_code == 200, r.text
        code, reason = await closed(ws)
        assert code == 4001 and reason.startswith("revoked"), reason
    assert await refused(ws_stack, demoted.access_token) == 4401


async def test_an_unassigned_operator_is_closed_and_cannot_subscribe_to_the_dialog_again(
    http: httpx.AsyncClient, ws_stack: Stack, database_url: str
) -> None:
    owner = await signup(http, "owner")
    operator = await signup(http, "operator")
    sql(database_url, "UPDATE users SET role = 'operator' WHERE id = %s", operator.user_id)
    assistant_id, dialog_id = await new_dialog(http, owner)
    await assign_operator(http, owner, assistant_id, operator)
    path = f"/api/assistants/{assistant_id}/operators/{operator.user_id}"
    async with WsClient(ws_stack.ws_url, operator.access_token) as ws:
        await ws.subscribe(f"dialog:{dialog_id}")
        r = await http.delete(path, headers=owner.headers)
        assert r.status_code == 204
        code, reason = await closed(ws)
        assert code == 4001 and reason.startswith("access_changed"), reason
    # The token is still good; the dialog is not theirs to see any more.
    async with WsClient(ws_stack.ws_url, operator.access_token) as ws:
        await ws.send({"type": "subscribe", "topic": f"dialog:{dialog_id}"})
        frame = await ws.recv()
        assert frame["type"] == "error" and frame["code"] == "not_found", frame
        await ws.subscribe("user")


async def test_deleting_the_assistant_ends_its_widget_sessions(
    http: httpx.AsyncClient, ws_stack: Stack
) -> None:
    owner = await signup(http, "shop")
    assistant_id, dialog_id, visitor_token = await widget_token(http, owner)
    async with WsClient(ws_stack.ws_url, visitor_token) as visitor:
        await visitor.subscribe(f"dialog:{dialog_id}")
        r = await http.delete(f"/api/assistants/{assistant_id}", headers=owner.headers)
        assert r.status_code == 204
        code, reason = await closed(visitor)
        assert code == 4001 and reason.startswith("revoked"), reason
    assert await refused(ws_stack, visitor_token) == 4401


async def test_every_subscribe_checks_the_session_again(
    http: httpx.AsyncClient, ws_stack: Stack, database_url: str
) -> None:
    account = await signup(http, "quiet")
    async with WsClient(ws_stack.ws_url, account.access_token) as ws:
        await ws.subscribe("user")
        # Deactivated behind the API's back: no revocation is announced, the next subscribe finds out.
        sql(database_url, "UPDATE users SET is_active = false WHERE id = %s", account.user_id)
        await ws.send({"type": "subscribe", "topic": "user"})
        code, reason = await closed(ws)
        assert code == 4001 and reason.startswith("revoked"), reason


@pytest.fixture(scope="module")
def short_stack(stack_env: dict[str, str], log_dir: Any) -> Iterator[Stack]:
    env = {**stack_env, "CHATAI_ACCESS_TOKEN_TTL_SECONDS": str(SHORT_TTL_SECONDS)}
    with running_stack(env, log_dir, workers=()) as system:
        yield system


async def test_a_socket_closes_when_its_token_expires(short_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=short_stack.base_url, timeout=10) as http:
        account = await signup(http, "brief")
    expires_at = int(time.time()) + SHORT_TTL_SECONDS  # at the latest; "exp" is issued in whole seconds
    async with WsClient(short_stack.ws_url, account.access_token) as ws:
        await ws.subscribe("user")
        code, reason = await closed(ws, timeout=SHORT_TTL_SECONDS + PROMPTLY)
        assert time.time() < expires_at + PROMPTLY
    assert code == 4001 and reason.startswith("token_expired"), reason
