"""The anonymous widget against abuse, through the real API, worker and fake LLM: what a script with the
public key can spend, and what a visitor can learn or reach."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.test_widget_sessions import SHOP, bearer, open_session, widget_assistant
from tests.fixtures.api import Account, signup
from tests.fixtures.billing import sql


async def configure(
    http: httpx.AsyncClient, owner: Account, assistant: dict[str, Any], **fields: Any
) -> None:
    r = await http.patch(f"/api/assistants/{assistant['id']}", json=fields, headers=owner.headers)
    assert r.status_code == 200, r.text
    for name, value in fields.items():
        assert r.json()[name] == value, name


async def visitor_message(
    http: httpx.AsyncClient, public_key: str, content: str = "hi [[tokens:2]]"
) -> httpx.Response:
    """What a script does: forge the listed Origin, open a new session (a new visitor), post once."""
    r = await open_session(http, public_key, SHOP)
    assert r.status_code == 201, r.text
    session = r.json()
    return await http.post(
        f"/api/dialogs/{session['dialog_id']}/messages",
        json={"content": content},
        headers=bearer(session["session_token"]),
    )


def refused(r: httpx.Response) -> int:
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited", r.text
    return int(r.headers["Retry-After"])


async def test_new_sessions_per_message_still_hit_the_assistants_budgets(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "target")
    shop = await widget_assistant(client, owner, SHOP)
    await configure(client, owner, shop, widget_messages_per_minute=3)
    statuses = [(await visitor_message(client, shop["public_key"])).status_code for _ in range(3)]
    assert statuses == [202, 202, 202]
    assert 1 <= refused(await visitor_message(client, shop["public_key"])) <= 60

    daily = await widget_assistant(client, owner, SHOP)
    await configure(client, owner, daily, widget_messages_per_day=2)
    for _ in range(2):
        assert (await visitor_message(client, daily["public_key"])).status_code == 202
    assert refused(await visitor_message(client, daily["public_key"])) > 60

    other = await widget_assistant(client, owner, SHOP)
    assert (await visitor_message(client, other["public_key"])).status_code == 202, (
        "budgets are per assistant"
    )


async def test_the_daily_spending_cap_refuses_widget_messages_once_spent(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "capped")
    shop = await widget_assistant(client, owner, SHOP)
    await configure(client, owner, shop, widget_daily_spend_cap_micros=1)
    assert (await visitor_message(client, shop["public_key"])).status_code == 202, "nothing spent yet"
    retry_after = refused(await visitor_message(client, shop["public_key"]))
    assert 1 <= retry_after <= 86_400, "until the day ends"

    await configure(client, owner, shop, widget_daily_spend_cap_micros=None)
    assert (await visitor_message(client, shop["public_key"])).status_code == 202, "the owner lifts the cap"


async def test_a_rotated_public_key_refuses_the_old_one(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "rotator")
    shop = await widget_assistant(client, owner, SHOP)
    old_key = shop["public_key"]
    r = await client.post(f"/api/assistants/{shop['id']}/rotate-public-key", headers=owner.headers)
    assert r.status_code == 200, r.text
    new_key = r.json()["public_key"]
    assert new_key != old_key and new_key.startswith("pk_") and r.json()["id"] == shop["id"]

    r = await open_session(client, old_key)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await client.get(f"/widget/{old_key}")).status_code == 404
    assert (await open_session(client, new_key)).status_code == 201
    assert (await client.get(f"/widget/{new_key}")).status_code == 200

    stranger = await signup(client, "stranger")
    r = await client.post(f"/api/assistants/{shop['id']}/rotate-public-key", headers=stranger.headers)
    assert r.status_code == 404


async def test_only_the_resume_token_reaches_a_visitors_dialog(
    client: httpx.AsyncClient, database_url: str
) -> None:
    owner = await signup(client, "resumer")
    shop = await widget_assistant(client, owner, SHOP)
    first = (await open_session(client, shop["public_key"])).json()
    other = (await open_session(client, shop["public_key"])).json()
    assert "end_user_id" not in first and first["resume_token"] != other["resume_token"]
    ((end_user_id,),) = sql(
        database_url, "SELECT widget_end_user_id::text FROM dialogs WHERE id = %s", first["dialog_id"]
    )
    payload, _, _ = first["resume_token"].rpartition(".")
    forged = payload + "." + other["resume_token"].rpartition(".")[2]
    for body in ({"end_user_id": end_user_id}, {"resume_token": end_user_id}, {"resume_token": forged}):
        r = await open_session(client, shop["public_key"], **body)
        assert r.status_code == 201, r.text
        assert r.json()["dialog_id"] != first["dialog_id"], body
    again = (await open_session(client, shop["public_key"], resume_token=first["resume_token"])).json()
    assert again["dialog_id"] == first["dialog_id"]

    # Staff tell visitors apart by an opaque label; the visitor's id is nowhere in what they read.
    r = await client.get("/api/dialogs", params={"assistant_id": shop["id"]}, headers=owner.headers)
    assert r.status_code == 200 and end_user_id not in r.text
    labels = {d["id"]: d["visitor"] for d in r.json()["items"]}
    assert (
        labels[first["dialog_id"]].startswith("Visitor ")
        and labels[first["dialog_id"]] != labels[other["dialog_id"]]
    )
    assert all("widget_end_user_id" not in d for d in r.json()["items"])
    r = await client.get(f"/api/dialogs/{first['dialog_id']}", headers=owner.headers)
    assert r.json()["visitor"] == labels[first["dialog_id"]] and end_user_id not in r.text
