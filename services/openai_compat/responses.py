"""A dialog's events as OpenAI chat completion objects.

``CompletionEvents`` follows one reply through the events the WebSocket gateway delivers for its dialog
(``reply.delta``, ``reply.completed``, ``reply.failed``, ``reply.cancelled``) and the key's own topic
(``api_key.revoked``), and says what to send: ``chat.completion.chunk`` objects for a stream, or the
``chat.completion`` once the reply has ended.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from services.accounts.api_keys import REVOKED_EVENT

OBJECT_CHUNK = "chat.completion.chunk"


class CompletionEvents:
    def __init__(self, reply_id: uuid.UUID, model: str, include_usage: bool = False):
        self.reply_id = str(reply_id)
        self.id = f"chatcmpl-{reply_id.hex}"
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.text = ""  # what the client has been sent
        self._role_sent = False  # the first chunk carries the role
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.finished = False  # nothing more will be sent
        self.reply_ended = False  # the reply reached a terminal state (no need to cancel it)
        # Set when the request ends in an error: (HTTP status, error object).
        self.error: tuple[int, dict[str, Any]] | None = None

    def on_event(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """What to send for one event frame (``{"id", "topic", "type", "data"}``), in order."""
        kind, data = event.get("type"), event.get("data") or {}
        if kind == REVOKED_EVENT:
            return self._fail(401, "The API key was revoked", "invalid_request_error", "invalid_api_key")
        if data.get("reply_id") != self.reply_id:
            return []
        if kind == "reply.delta":
            return self._content(data["text"], data.get("reset", False))
        if kind == "reply.completed":
            usage = data.get("usage") or {}
            prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
            self.usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}  # fmt: skip
            return self._end(data.get("content", self.text))
        if kind == "reply.cancelled":
            return self._end(data.get("content", self.text))
        if kind == "reply.failed":
            self.reply_ended = True
            error = data.get("error") or {}
            return self._fail(502, error.get("message", "The reply failed"), "server_error",
                              error.get("code", "reply_failed"))  # fmt: skip
        return []

    def _content(self, text: str, reset: bool) -> list[dict[str, Any]]:
        if not reset:
            new = text
        elif text.startswith(self.text):
            new = text[len(self.text) :]
        else:
            # A retried generation diverged from what was streamed; a stream cannot take text back,
            # so the client keeps what it has and gets what follows the new text's end.
            self.text = text
            return []
        if not new:
            return []
        self.text += new
        return [self.chunk({"content": new}, None)]

    def _end(self, content: str) -> list[dict[str, Any]]:
        out = self._content(content, reset=True)
        self.text = content
        self.finished = self.reply_ended = True
        out.append(self.chunk({}, "stop"))
        if self.include_usage:
            out.append({**self._head(), "choices": [], "usage": self.usage})
        return out

    def _fail(self, status: int, message: str, kind: str, code: str) -> list[dict[str, Any]]:
        self.finished = True
        body = {"message": message, "type": kind, "code": code}
        self.error = (status, body)
        return [{"error": body}]

    def _head(self) -> dict[str, Any]:
        return {"id": self.id, "object": OBJECT_CHUNK, "created": self.created, "model": self.model}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        return {**self._head(), "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    def completion(self) -> dict[str, Any]:
        """The whole answer, once ``finished`` without an error."""
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": self.text}, "finish_reason": "stop"}
            ],
            "usage": self.usage,
        }

    def lost(self) -> list[dict[str, Any]]:
        """The event stream ended before the reply did (this process lost its Redis subscription)."""
        return self._fail(503, "The reply's events are unavailable; try again", "server_error", "unavailable")
