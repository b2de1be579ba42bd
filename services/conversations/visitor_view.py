"""What an anonymous widget visitor may see of their dialog's messages and events.

Staff read provider error text, costs, token usage, request ids, the files a reply cited and who
answered; a visitor gets a generic error, no money or usage, citation titles only where the owner
allows them, and operators by display name only. Event kinds not listed here are not sent to them.
"""

from __future__ import annotations

from typing import Any

import orjson

GENERIC_ERROR = {"code": "reply_failed", "message": "The assistant could not answer. Please try again."}
NO_USAGE = {"prompt_tokens": None, "completion_tokens": None}
OPERATOR_NAME = "Support"  # shown when an operator has set no name of their own


def citations(items: list[dict[str, Any]] | None, titles_allowed: bool) -> list[dict[str, Any]]:
    if not titles_allowed:
        return []
    return [{"title": item.get("filename")} for item in items or ()]


def message(fields: dict[str, Any], titles_allowed: bool) -> dict[str, Any]:
    """A message (as ``GET /api/messages/{id}`` shows it to staff) as a visitor sees it."""
    return {
        **fields,
        "error": GENERIC_ERROR if fields.get("error") else None,
        "usage": NO_USAGE,
        "cost_micros": None,
        "citations": citations(fields.get("citations"), titles_allowed),
        "author_id": None,
    }


def _reply_id(data: dict[str, Any]) -> dict[str, Any]:
    return {"reply_id": data.get("reply_id")}


def event(kind: str, data: dict[str, Any], titles_allowed: bool) -> dict[str, Any] | None:
    """An event's data as a visitor sees it; None for events not meant for visitors."""
    if kind == "message.created":
        return message(data, titles_allowed)
    if kind == "reply.started":
        return _reply_id(data)  # no request id
    if kind == "reply.delta":
        delta = {**_reply_id(data), "text": data.get("text", "")}
        return {**delta, "reset": True} if data.get("reset") else delta
    if kind == "reply.completed":
        return {
            **_reply_id(data),
            "content": data.get("content", ""),
            "usage": NO_USAGE,
            "cost_micros": None,
            "citations": citations(data.get("citations"), titles_allowed),
        }
    if kind == "reply.cancelled":
        return {**_reply_id(data), "content": data.get("content", "")}
    if kind == "reply.failed":
        return {**_reply_id(data), "error": GENERIC_ERROR}
    if kind in ("dialog.operator_joined", "dialog.operator_left"):
        return {
            "dialog_id": data.get("dialog_id"),
            "operator_name": data.get("operator_name") or OPERATOR_NAME,
        }
    return None


def frame(text: str, titles_allowed: bool) -> str | None:
    """A published frame (``{"id", "topic", "type", "data"}`` as JSON text) as a visitor sees it."""
    parsed = orjson.loads(text)
    data = event(parsed.get("type", ""), parsed.get("data") or {}, titles_allowed)
    if data is None:
        return None
    return orjson.dumps({**parsed, "data": data}).decode()
