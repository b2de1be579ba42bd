"""Operators through the real processes (API + llm worker + fake LLM): owners assign them, they see only
their assistants' dialogs, and a takeover silences the assistant until the dialog is handed back."""

from __future__ import annotations

import uuid

import httpx

from tests.fixtures.api import (
    Account,
    WsClient,
    assign_operator,
    invite_operator,
    new_dialog,
    poll_reply,
    post_message,
    signup,
)
from tests.fixtures.database import sql
from tests.fixtures.stack import Stack


async def operator(http: httpx.AsyncClient, database_url: str) -> Account:
    account = await signup(http, "operator")
    sql(database_url, "UPDATE users SET role = 'operator' WHERE id = %s", account.user_id)
    return account


async def unassign(
    http: httpx.AsyncClient, owner: Account, assistant_id: str, user_id: str
) -> httpx.Response:
    return await http.delete(f"/api/assistants/{assistant_id}/operators/{user_id}", headers=owner.headers)


def error_code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def test_takeover_silences_the_assistant_and_the_operator_answers_over_the_websocket(
    client: httpx.AsyncClient, stack: Stack, database_url: str
) -> None:
    owner = await signup(client, "owner")
    op = await operator(client, database_url)
    assistant_id, dialog_id = await new_dialog(client, owner)
    await assign_operator(client, owner, assistant_id, op)
    r = await client.get(f"/api/assistants/{assistant_id}/operators", headers=owner.headers)
    assert [o["id"] for o in r.json()["items"]] == [op.user_id]
    topic = f"dialog:{dialog_id}"

    async with (
        WsClient(stack.ws_url, owner.access_token) as end_user,
        WsClient(stack.ws_url, op.access_token) as desk,
    ):
        await end_user.subscribe(topic)
        await desk.subscribe(topic)
        r = await client.post(f"/api/dialogs/{dialog_id}/takeover", headers=op.headers)
        assert r.status_code == 200 and r.json()["operator_id"] == op.user_id, r.text
        joined = (await end_user.until("dialog.operator_joined"))[-1]["data"]
        assert joined["operator_id"] == op.user_id and joined["dialog_id"] == dialog_id

        # While the operator holds the dialog the user's message gets no reply; the operator sees it.
        held = await post_message(client, owner, dialog_id, "is a person there? [[tokens:5]]")
        assert held["reply"] is None
        created = (await desk.until("message.created"))[-1]["data"]
        assert created["id"] == held["message"]["id"] and created["content"].startswith("is a person")

        r = await client.post(
            f"/api/dialogs/{dialog_id}/operator-messages",
            json={"content": "Hi, Olga from support here."},
            headers=op.headers,
        )
        assert r.status_code == 201, r.text
        answer = r.json()
        assert answer["role"] == "assistant" and answer["status"] == "completed"
        assert answer["author_id"] == op.user_id
        frames = await end_user.until("reply.completed", answer["id"])
        assert frames[-1]["data"]["content"] == "Hi, Olga from support here."
        assert not any(f["type"] == "reply.started" for f in frames), "the assistant did not answer"

        r = await client.post(f"/api/dialogs/{dialog_id}/release", headers=op.headers)
        assert r.status_code == 200 and r.json()["operator_id"] is None, r.text
        left = (await end_user.until("dialog.operator_left"))[-1]["data"]
        assert left["operator_id"] == op.user_id

        # Handed back: the assistant answers again.
        after = await post_message(client, owner, dialog_id, "thanks [[tokens:5]]")
        assert after["reply"] is not None
        await end_user.until("reply.completed", after["reply"]["id"])
    assert (await poll_reply(client, owner, after["reply"]["id"]))["status"] == "completed"

    r = await client.get(f"/api/dialogs/{dialog_id}/messages", headers=op.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    # No generated reply to the message sent while the dialog was held: no reply row exists at all.
    assert [(m["role"], m["content"][:5]) for m in items[:3]] == [
        ("user", "is a "),
        ("assistant", "Hi, O"),
        ("user", "thank"),
    ]
    assert [m["role"] for m in items] == ["user", "assistant", "user", "assistant"]
    assert items[3]["id"] == after["reply"]["id"]


async def test_holding_rules(client: httpx.AsyncClient, database_url: str) -> None:
    owner = await signup(client, "owner")
    first, second = await operator(client, database_url), await operator(client, database_url)
    assistant_id, dialog_id = await new_dialog(client, owner)
    for op in (first, second):
        await assign_operator(client, owner, assistant_id, op)

    content = {"content": "hello"}
    r = await client.post(f"/api/dialogs/{dialog_id}/operator-messages", json=content, headers=first.headers)
    assert error_code(r) == (409, "conflict"), "writing needs the dialog held first"
    assert (await client.post(f"/api/dialogs/{dialog_id}/takeover", headers=first.headers)).status_code == 200
    r = await client.post(f"/api/dialogs/{dialog_id}/takeover", headers=second.headers)
    assert error_code(r) == (409, "conflict")
    r = await client.post(f"/api/dialogs/{dialog_id}/operator-messages", json=content, headers=second.headers)
    assert error_code(r) == (409, "conflict")
    r = await client.post(f"/api/dialogs/{dialog_id}/release", headers=second.headers)
    assert error_code(r) == (409, "conflict")

    # Unassigning the holder hands the dialog back.
    r = await client.delete(
        f"/api/assistants/{assistant_id}/operators/{first.user_id}", headers=owner.headers
    )
    assert r.status_code == 204, r.text
    r = await client.get(f"/api/dialogs/{dialog_id}", headers=owner.headers)
    assert r.json()["operator_id"] is None
    r = await client.delete(
        f"/api/assistants/{assistant_id}/operators/{first.user_id}", headers=owner.headers
    )
    assert error_code(r) == (404, "not_found")

    # Only users with the operator role can be assigned: a plain user is never even invited.
    plain = await signup(client, "plain")
    assert (await invite_operator(client, owner, assistant_id, plain.email)).status_code == 202
    assert (await client.get("/api/operator-invitations", headers=plain.headers)).json()["items"] == []


async def test_an_operator_sees_only_the_dialogs_of_assigned_assistants(
    client: httpx.AsyncClient, stack: Stack, database_url: str
) -> None:
    owner, stranger = await signup(client, "owner"), await signup(client, "stranger")
    op = await operator(client, database_url)
    assigned_assistant, assigned = await new_dialog(client, owner)
    _, unassigned = await new_dialog(client, owner)
    _, foreign = await new_dialog(client, stranger)
    await assign_operator(client, owner, assigned_assistant, op)
    posted = {d: await post_message(client, acct, d, "secret [[tokens:3]]")
              for d, acct in ((assigned, owner), (unassigned, owner), (foreign, stranger))}  # fmt: skip

    r = await client.get("/api/dialogs", headers=op.headers)
    assert [d["id"] for d in r.json()["items"]] == [assigned]
    assert (await client.get(f"/api/dialogs/{assigned}/messages", headers=op.headers)).status_code == 200
    message_id = posted[assigned]["message"]["id"]
    assert (await client.get(f"/api/messages/{message_id}", headers=op.headers)).status_code == 200
    # Reading is not writing as the end user: that stays with the owner.
    r = await client.post(f"/api/dialogs/{assigned}/messages", json={"content": "hi"}, headers=op.headers)
    assert error_code(r) == (404, "not_found")

    for dialog_id in (unassigned, foreign):
        for method, path, body in (
            ("GET", f"/api/dialogs/{dialog_id}", None),
            ("GET", f"/api/dialogs/{dialog_id}/messages", None),
            ("GET", f"/api/messages/{posted[dialog_id]['message']['id']}", None),
            ("POST", f"/api/dialogs/{dialog_id}/takeover", None),
            ("POST", f"/api/dialogs/{dialog_id}/release", None),
            ("POST", f"/api/dialogs/{dialog_id}/operator-messages", {"content": "hi"}),
        ):
            r = await client.request(method, path, json=body, headers=op.headers)
            assert error_code(r) == (404, "not_found"), (method, path, r.text)
            assert "secret" not in r.text

    async with WsClient(stack.ws_url, op.access_token) as ws:
        await ws.subscribe(f"dialog:{assigned}")
        for dialog_id in (unassigned, foreign):
            await ws.send({"type": "subscribe", "topic": f"dialog:{dialog_id}", "last_event_id": "0"})
            frame = await ws.recv()
            assert frame["type"] == "error" and frame["code"] == "not_found", frame

    # Unassigned, the operator loses sight of the dialog at once.
    r = await client.delete(
        f"/api/assistants/{assigned_assistant}/operators/{op.user_id}", headers=owner.headers
    )
    assert r.status_code == 204
    assert error_code(await client.get(f"/api/dialogs/{assigned}", headers=op.headers)) == (404, "not_found")
    async with WsClient(stack.ws_url, op.access_token) as ws:
        await ws.send({"type": "subscribe", "topic": f"dialog:{assigned}", "last_event_id": "0"})
        frame = await ws.recv()
        assert frame["type"] == "error" and frame["code"] == "not_found", frame


async def test_an_owner_cannot_assign_operators_to_another_tenants_assistant(
    client: httpx.AsyncClient, database_url: str
) -> None:
    owner, intruder = await signup(client, "owner"), await signup(client, "intruder")
    op = await operator(client, database_url)
    assistant_id, _ = await new_dialog(client, owner)
    r = await invite_operator(client, intruder, assistant_id, op.email)
    assert error_code(r) == (404, "not_found")
    assert (await client.get("/api/operator-invitations", headers=op.headers)).json()["items"] == []
    path = f"/api/assistants/{assistant_id}/operators"
    assert error_code(await client.get(path, headers=intruder.headers)) == (404, "not_found")
    r = await client.delete(f"{path}/{op.user_id}", headers=intruder.headers)
    assert error_code(r) == (404, "not_found")
    r = await client.get(path, headers=owner.headers)
    assert r.status_code == 200 and r.json()["items"] == []
    r = await client.get("/api/dialogs", headers=op.headers)
    assert r.json()["items"] == []


async def test_operators_are_assigned_only_by_accepting_an_invitation(
    client: httpx.AsyncClient, database_url: str
) -> None:
    owner, plain = await signup(client, "inviter"), await signup(client, "plain")
    op = await operator(client, database_url)
    assistant_id, _ = await new_dialog(client, owner)
    # Assigning by user id (an id a widget visitor could once read in events) is gone.
    r = await client.put(f"/api/assistants/{assistant_id}/operators/{op.user_id}", headers=owner.headers)
    assert r.status_code == 405

    # An operator, a user without the role, an unknown email: one answer, so it tells the owner nothing.
    answers = set()
    for email in (op.email, plain.email, f"nobody-{uuid.uuid4().hex[:8]}@example.com", op.email.upper()):
        r = await invite_operator(client, owner, assistant_id, email)
        answers.add((r.status_code, r.text))
    assert answers == {(202, '{"status":"invited"}')}
    path = f"/api/assistants/{assistant_id}/operators"
    assert (await client.get(path, headers=owner.headers)).json()["items"] == [], "not before accepting"

    r = await client.get("/api/operator-invitations", headers=op.headers)
    (invitation,) = r.json()["items"]
    assert (invitation["assistant_id"], invitation["assistant_name"]) == (assistant_id, "Helper")
    accept = f"/api/operator-invitations/{invitation['id']}/accept"
    for other in (plain, owner):
        assert error_code(await client.post(accept, headers=other.headers)) == (404, "not_found")
    assert (await client.post(accept, headers=op.headers)).status_code == 204
    r = await client.get(path, headers=owner.headers)
    assert [o["id"] for o in r.json()["items"]] == [op.user_id]
    assert error_code(await client.post(accept, headers=op.headers)) == (404, "not_found")

    # Unassigning an unknown id and a non-operator's id answer alike too.
    unknown = await client.delete(f"{path}/{uuid.uuid4()}", headers=owner.headers)
    not_operator = await client.delete(f"{path}/{plain.user_id}", headers=owner.headers)
    assert (unknown.status_code, unknown.json()) == (not_operator.status_code, not_operator.json())
    assert error_code(unknown) == (404, "not_found")

    # An operator may decline instead.
    second, _ = await new_dialog(client, owner)
    assert (await invite_operator(client, owner, second, op.email)).status_code == 202
    (invitation,) = (await client.get("/api/operator-invitations", headers=op.headers)).json()["items"]
    r = await client.delete(f"/api/operator-invitations/{invitation['id']}", headers=op.headers)
    assert r.status_code == 204
    assert (await client.get("/api/operator-invitations", headers=op.headers)).json()["items"] == []
    r = await client.get(f"/api/assistants/{second}/operators", headers=owner.headers)
    assert r.json()["items"] == []
