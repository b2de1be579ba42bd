"""OpenAPI links: how one operation's response feeds the next (a created assistant's id into its dialogs,
a posted message's reply id into cancel, ...). Clients and generators (schemathesis's stateful tests)
follow them to reach real rows instead of random ids.

FastAPI has no declaration for links, so they are added to the generated document here, by method and
path; a link naming an operation the app does not have fails when the document is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

ASSISTANT = "/api/assistants/{assistant_id}"
DIALOG = "/api/dialogs/{dialog_id}"
MESSAGE = "/api/messages/{message_id}"
DOCUMENT = "/api/documents/{document_id}"
BOT = "/api/bots/{bot_id}"


@dataclass(frozen=True)
class Link:
    name: str
    target: tuple[str, str]  # method, path
    parameters: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] | None = None  # fields of the target's JSON body


def _to(name: str, method: str, path: str, **parameters: str) -> Link:
    return Link(name, (method, path), parameters)


_ASSISTANT_ID = {"assistant_id": "$response.body#/id"}
_DIALOG_ID = {"dialog_id": "$response.body#/id"}

# (method, path, status) of the source operation → the links from its response.
LINKS: dict[tuple[str, str, str], tuple[Link, ...]] = {
    ("POST", "/api/assistants", "201"): (
        _to("GetAssistant", "GET", ASSISTANT, **_ASSISTANT_ID),
        _to("UpdateAssistant", "PATCH", ASSISTANT, **_ASSISTANT_ID),
        _to("DeleteAssistant", "DELETE", ASSISTANT, **_ASSISTANT_ID),
        _to("UploadDocument", "POST", f"{ASSISTANT}/documents", **_ASSISTANT_ID),
        _to("ListDocuments", "GET", f"{ASSISTANT}/documents", **_ASSISTANT_ID),
        _to("SearchKnowledge", "POST", f"{ASSISTANT}/search", **_ASSISTANT_ID),
        _to("ListOperators", "GET", f"{ASSISTANT}/operators", **_ASSISTANT_ID),
        _to("ListDialogs", "GET", "/api/dialogs", **{"query.assistant_id": "$response.body#/id"}),
        _to("AssistantUsage", "GET", "/api/analytics/usage", **{"query.assistant_id": "$response.body#/id"}),
        Link("OpenDialog", ("POST", "/api/dialogs"), body={"assistant_id": "$response.body#/id"}),
        Link("ConnectBot", ("POST", "/api/bots"), body={"assistant_id": "$response.body#/id"}),
    ),
    ("POST", "/api/dialogs", "201"): (
        _to("GetDialog", "GET", DIALOG, **_DIALOG_ID),
        _to("PostMessage", "POST", f"{DIALOG}/messages", **_DIALOG_ID),
        _to("ListMessages", "GET", f"{DIALOG}/messages", **_DIALOG_ID),
        _to("TakeOver", "POST", f"{DIALOG}/takeover", **_DIALOG_ID),
        _to("Release", "POST", f"{DIALOG}/release", **_DIALOG_ID),
    ),
    ("POST", "/api/dialogs/{dialog_id}/takeover", "200"): (
        _to("PostOperatorMessage", "POST", f"{DIALOG}/operator-messages", **_DIALOG_ID),
        _to("ReleaseHeld", "POST", f"{DIALOG}/release", **_DIALOG_ID),
    ),
    ("POST", "/api/dialogs/{dialog_id}/messages", "202"): (
        _to("GetUserMessage", "GET", MESSAGE, message_id="$response.body#/message/id"),
        _to("GetReply", "GET", MESSAGE, message_id="$response.body#/reply/id"),
        _to("CancelReply", "POST", f"{MESSAGE}/cancel", message_id="$response.body#/reply/id"),
        _to("ListDialogMessages", "GET", f"{DIALOG}/messages", dialog_id="$request.path.dialog_id"),
    ),
    ("POST", "/api/assistants/{assistant_id}/documents", "202"): (
        _to("GetDocument", "GET", DOCUMENT, document_id="$response.body#/id"),
        _to("DeleteDocument", "DELETE", DOCUMENT, document_id="$response.body#/id"),
    ),
    ("GET", "/api/balance/transactions", "200"): (
        _to(
            "GetTransaction",
            "GET",
            "/api/balance/transactions/{transaction_id}",
            transaction_id="$response.body#/items/0/id",
        ),
        _to(
            "RefundTransaction",
            "POST",
            "/api/admin/transactions/{transaction_id}/refund",
            transaction_id="$response.body#/items/0/id",
        ),
    ),
    ("POST", "/api/bots", "201"): (
        _to("GetBot", "GET", BOT, bot_id="$response.body#/id"),
        _to("DeleteBot", "DELETE", BOT, bot_id="$response.body#/id"),
    ),
    ("POST", "/api/auth/register", "201"): (
        _to("AdminUpdateUser", "PATCH", "/api/admin/users/{user_id}", user_id="$response.body#/id"),
        _to("AdminTopup", "POST", "/api/admin/users/{user_id}/topup", user_id="$response.body#/id"),
    ),
    ("POST", "/api/admin/reindex", "202"): (
        _to("ReindexProgress", "GET", "/api/admin/reindex/{run_id}", run_id="$response.body#/run_id"),
    ),
}


def add_links(document: dict[str, Any]) -> None:
    """Write ``LINKS`` into an OpenAPI document (in place), naming targets by their operationId."""
    paths = document["paths"]
    for (method, path, status), links in LINKS.items():
        response = paths[path][method.lower()]["responses"][status]
        response["links"] = {link.name: _definition(paths, link) for link in links}


def _definition(paths: dict[str, Any], link: Link) -> dict[str, Any]:
    method, path = link.target
    definition: dict[str, Any] = {"operationId": paths[path][method.lower()]["operationId"]}
    if link.parameters:
        definition["parameters"] = dict(link.parameters)
    if link.body is not None:
        definition["requestBody"] = dict(link.body)
    return definition


def install_links(app: FastAPI) -> None:
    """Build the app's OpenAPI document with ``LINKS`` in it (FastAPI caches the document it builds)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_links(build())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
