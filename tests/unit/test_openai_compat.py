"""The translation of a dialog's events into OpenAI chat completion objects."""

from __future__ import annotations

import uuid
from typing import Any

from services.openai_compat.responses import CompletionEvents

REPLY = uuid.uuid4()


def event(kind: str, **data: Any) -> dict[str, Any]:
    return {"id": "1-0", "topic": "dialog:x", "type": kind, "data": {"reply_id": str(REPLY), **data}}


def contents(objects: list[dict[str, Any]]) -> list[str]:
    return [o["choices"][0]["delta"].get("content", "") for o in objects if o.get("choices")]


def test_deltas_become_chunks_the_first_with_the_role_then_stop_and_usage() -> None:
    events = CompletionEvents(REPLY, "model-id", include_usage=True)
    assert events.on_event(event("reply.started")) == []
    first = events.on_event(event("reply.delta", text="Hel"))
    assert first[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
    assert first[0]["id"] == f"chatcmpl-{REPLY.hex}" and first[0]["object"] == "chat.completion.chunk"
    assert contents(events.on_event(event("reply.delta", text="lo"))) == ["lo"]
    usage = {"prompt_tokens": 7, "completion_tokens": 2}
    end = events.on_event(event("reply.completed", content="Hello!", usage=usage))
    # What the deltas missed comes before the finish; the usage chunk has no choices.
    assert contents(end) == ["!", ""] and end[1]["choices"][0]["finish_reason"] == "stop"
    assert end[2]["choices"] == [] and end[2]["usage"] == {**usage, "total_tokens": 9}
    assert events.finished and events.reply_ended and events.error is None
    assert events.completion()["choices"][0]["message"] == {"role": "assistant", "content": "Hello!"}


def test_a_reset_that_extends_the_text_sends_only_whats_new_and_one_that_diverges_sends_nothing() -> None:
    events = CompletionEvents(REPLY, "m")
    events.on_event(event("reply.delta", text="Hello"))
    assert contents(events.on_event(event("reply.delta", text="Hello world", reset=True))) == [" world"]
    assert events.on_event(event("reply.delta", text="Goodbye", reset=True)) == []
    assert contents(events.on_event(event("reply.delta", text="!"))) == ["!"]


def test_other_replies_are_ignored_and_failure_and_revocation_are_errors() -> None:
    events = CompletionEvents(REPLY, "m")
    assert (
        events.on_event({"type": "reply.delta", "data": {"reply_id": str(uuid.uuid4()), "text": "x"}}) == []
    )
    failed = events.on_event(event("reply.failed", error={"code": "llm_unavailable", "message": "down"}))
    assert failed == [{"error": {"message": "down", "type": "server_error", "code": "llm_unavailable"}}]
    assert events.error is not None and events.error[0] == 502 and events.reply_ended

    revoked = CompletionEvents(REPLY, "m")
    (error,) = revoked.on_event({"type": "api_key.revoked", "data": {"api_key_id": "k"}})
    assert error["error"]["code"] == "invalid_api_key" and revoked.finished and not revoked.reply_ended
