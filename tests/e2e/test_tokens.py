"""Access tokens through the real API: tampering of every kind is 401, signing keys rotate by ``kid``
without logging anyone out, and logout and deactivation take effect at once (REST and WebSocket)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import websockets

from tests.fixtures.api import Account, signup
from tests.fixtures.billing import make_admin
from tests.fixtures.database import sql
from tests.fixtures.stack import TEST_JWT_SECRET, Stack, running_stack

NEW_SECRET = "the-rotated-signing-key-which-is-long-enough-too"


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    # The key was rotated: "k2" signs, the earlier "k1" (the usual test key) still verifies.
    env = {
        **stack_env,
        "CHATAI_JWT_SECRET": NEW_SECRET,
        "CHATAI_JWT_KEY_ID": "k2",
        "CHATAI_JWT_PREVIOUS_KEYS": json.dumps({"k1": TEST_JWT_SECRET}),
    }
    with running_stack(env, log_dir, workers=()) as system:  # type: ignore[arg-type]
        yield system


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _me(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})


async def test_tampered_tokens_are_refused_and_old_keys_still_verify(http: httpx.AsyncClient) -> None:
    account = await signup(http, "tamper")
    other = await signup(http, "victim")
    header = jwt.get_unverified_header(account.access_token)
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    assert header["kid"] == "k2" and header["alg"] == "HS256"
    assert {"iss", "aud", "exp", "iat", "jti", "sub"} <= set(claims)
    assert 890 <= claims["exp"] - claims["iat"] <= 900
    assert (await _me(http, account.access_token)).status_code == 200

    head, _, signature = account.access_token.split(".")
    swapped = f"{head}.{_b64({**claims, 'sub': other.user_id})}.{signature}"
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'k2'})}.{_b64(claims)}."
    refused = {
        "changed payload": swapped,
        "alg none": unsigned,
        "alg none, signature kept": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.{signature}",
        "algorithm not allowed": jwt.encode(claims, NEW_SECRET, algorithm="HS512", headers={"kid": "k2"}),
        "wrong audience": jwt.encode({**claims, "aud": "elsewhere"}, NEW_SECRET, headers={"kid": "k2"}),
        "wrong issuer": jwt.encode({**claims, "iss": "someone"}, NEW_SECRET, headers={"kid": "k2"}),
        "unknown key id": jwt.encode(claims, NEW_SECRET, headers={"kid": "k9"}),
        "key id of another key": jwt.encode(claims, NEW_SECRET, headers={"kid": "k1"}),
        "no jti": jwt.encode(
            {k: v for k, v in claims.items() if k != "jti"}, NEW_SECRET, headers={"kid": "k2"}
        ),
        "garbage": "a.b.c",
    }
    for what, token in refused.items():
        r = await _me(http, token)
        assert r.status_code == 401, (what, r.text)
        assert r.json()["error"]["code"] == "unauthorized", what

    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, NEW_SECRET, headers={"kid": "k2"})
    r = await _me(http, expired)
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"

    # Signed with the previous key under its own id: still good until that key is removed.
    old_key = jwt.encode(claims, TEST_JWT_SECRET, headers={"kid": "k1"})
    r = await _me(http, old_key)
    assert r.status_code == 200 and r.json()["id"] == account.user_id


async def _ws_refused(stack: Stack, token: str) -> dict[str, Any]:
    async with websockets.connect(f"{stack.ws_url}?token={token}") as ws:
        frame = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        return frame


async def test_logout_revokes_that_access_token_at_once(http: httpx.AsyncClient, stack: Stack) -> None:
    account = await signup(http, "leaver")
    r = await http.post("/api/auth/login", json={"email": account.email, "password": account.password})
    second_token = r.json()["access_token"]
    r = await http.post(
        "/api/auth/logout", json={"refresh_token": account.refresh_token}, headers=account.headers
    )
    assert r.status_code == 204
    r = await _me(http, account.access_token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert (await _ws_refused(stack, account.access_token))["code"] == "unauthorized"
    # Another login of the same user is not affected.
    assert (await _me(http, second_token)).status_code == 200


async def test_deactivation_takes_effect_at_once(
    http: httpx.AsyncClient, stack: Stack, database_url: str
) -> None:
    admin = await signup(http, "admin")
    make_admin(database_url, admin.user_id)
    user: Account = await signup(http, "deactivated")
    assert (await _me(http, user.access_token)).status_code == 200

    r = await http.patch(f"/api/admin/users/{user.user_id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert (await _me(http, user.access_token)).status_code == 401
    assert (
        await http.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    ).status_code == 401
    await _ws_refused(stack, user.access_token)
    r = await http.post("/api/auth/login", json={"email": user.email, "password": user.password})
    assert r.status_code == 401

    r = await http.patch(f"/api/admin/users/{user.user_id}", json={"is_active": True}, headers=admin.headers)
    assert r.status_code == 200
    # Reactivated: the old token stays dead, a new login works.
    assert (await _me(http, user.access_token)).status_code == 401
    r = await http.post("/api/auth/login", json={"email": user.email, "password": user.password})
    assert r.status_code == 200
    fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await http.get("/api/users/me", headers=fresh)).status_code == 200

    rows = sql(
        database_url,
        "SELECT actor_id::text, details FROM audit_events"
        " WHERE action = 'user_updated' AND subject = %s ORDER BY created_at",
        user.user_id,
    )
    assert [(actor, d["after"]["is_active"]) for actor, d in rows] == [
        (admin.user_id, False), (admin.user_id, True)
    ]  # fmt: skip
    r = await http.get("/api/admin/audit", headers=admin.headers)
    assert r.status_code == 200 and r.json()["items"][0]["action"] == "user_updated"
    assert (await http.get("/api/admin/audit", headers=fresh)).status_code == 403


async def test_admins_list_and_search_users(http: httpx.AsyncClient, database_url: str) -> None:
    admin = await signup(http, "lister")
    make_admin(database_url, admin.user_id)
    tag = f"needle{int(time.time() * 1000)}"
    first = await signup(http, f"{tag}-one")
    second = await signup(http, f"{tag}-two")
    other = await signup(http, "haystack")

    r = await http.get("/api/admin/users", params={"q": tag, "limit": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [u["id"] for u in page["items"]] == [second.user_id]  # newest first
    r = await http.get(
        "/api/admin/users", params={"q": tag, "cursor": page["next_cursor"]}, headers=admin.headers
    )
    assert [u["id"] for u in r.json()["items"]] == [first.user_id] and r.json()["next_cursor"] is None
    r = await http.get("/api/admin/users", params={"q": "%"}, headers=admin.headers)
    assert r.json()["items"] == []  # wildcards are searched for literally
    r = await http.get("/api/admin/users", params={"role": "admin"}, headers=admin.headers)
    assert admin.user_id in {u["id"] for u in r.json()["items"]}
    assert other.user_id not in {u["id"] for u in r.json()["items"]}
    r = await http.get("/api/admin/users", headers=other.headers)
    assert r.status_code == 403
