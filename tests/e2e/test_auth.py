"""Accounts and tokens through HTTP: registration, login, rotation, reuse detection, logout."""

from __future__ import annotations

import httpx

from tests.fixtures.api import signup


async def test_register_login_me(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/auth/register", json={"email": "Eve@Example.com", "password": "long enough pw"}
    )
    assert r.status_code == 201
    assert r.json()["email"] == "eve@example.com" and r.json()["role"] == "user"
    r = await client.post(
        "/api/auth/register", json={"email": "eve@example.com", "password": "long enough pw"}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "email_taken"
    r = await client.post("/api/auth/login", json={"email": "eve@example.com", "password": "long enough pw"})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == "eve@example.com"


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    account = await signup(client, "frank")
    wrong = await client.post("/api/auth/login", json={"email": account.email, "password": "not it at all"})
    unknown = await client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": "whatever1"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_bad_tokens_are_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}):
        r = await client.get("/api/users/me", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized"


async def test_expired_token_is_token_expired(client: httpx.AsyncClient) -> None:
    import time

    import jwt

    from core.settings import get_settings

    account = await signup(client, "gina")
    settings = get_settings()
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 10
    expired = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    r = await client.get("/api/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    account = await signup(client, "hank")
    first = account.refresh_token
    r = await client.post("/api/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 200
    second = r.json()["refresh_token"]
    assert second != first
    # The old token comes back (stolen and replayed): the whole family is revoked, including the new one.
    r = await client.post("/api/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 401
    r = await client.post("/api/auth/refresh", json={"refresh_token": second})
    assert r.status_code == 401


async def test_reuse_also_revokes_the_access_tokens_of_the_family(client: httpx.AsyncClient) -> None:
    account = await signup(client, "stolen")
    other_login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    r = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert r.status_code == 200
    rotated_access = r.json()["access_token"]
    for token in (account.access_token, rotated_access):
        assert (await me(client, token)).status_code == 200

    r = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert r.status_code == 401
    # Whoever holds an access token of that login is out now, not when the token expires.
    for token in (account.access_token, rotated_access):
        r = await me(client, token)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    # Another login of the same account is a different family and keeps working.
    assert (await me(client, other_login.json()["access_token"])).status_code == 200


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})


async def test_logout_revokes_the_refresh_token(client: httpx.AsyncClient) -> None:
    account = await signup(client, "ivy")
    r = await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    rotated = r.json()
    r = await client.post(
        "/api/auth/logout",
        json={"refresh_token": rotated["refresh_token"]},
        headers={"Authorization": f"Bearer {rotated['access_token']}"},
    )
    assert r.status_code == 204
    r = await client.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert r.status_code == 401
    # The whole login ends: an access token issued from it before the rotation stops working too.
    assert (await me(client, account.access_token)).status_code == 401


async def test_validation_errors_list_the_fields(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/auth/register", json={"email": "not-an-email", "password": "short", "extra": 1}
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    fields = {tuple(d["loc"])[-1] for d in error["details"]}
    assert {"email", "password", "extra"} <= fields
