"""Pure pieces of the widget's visitor handling: resume tokens and what a visitor's view keeps."""

from __future__ import annotations

import uuid

import orjson

from services.conversations import visitor_view, widget


def test_a_resume_token_names_its_visitor_for_its_assistant_only() -> None:
    assistant, visitor = uuid.uuid4(), uuid.uuid4()
    token = widget.resume_token(assistant, visitor)
    assert widget.resumed_visitor(token, assistant) == visitor
    assert str(visitor) not in token
    assert widget.resumed_visitor(token, uuid.uuid4()) is None, "another assistant's widget"
    other = widget.resume_token(assistant, uuid.uuid4())
    forged = token.rpartition(".")[0] + "." + other.rpartition(".")[2]
    for bad in (forged, str(visitor), "", None, "wr1.", "wr1.!!!.???", token[:-2], token + "x"):
        assert widget.resumed_visitor(bad, assistant) is None, bad
    assert (
        widget.visitor_label(visitor) == widget.visitor_label(visitor) != widget.visitor_label(uuid.uuid4())
    )
    assert str(visitor)[:6] not in widget.visitor_label(visitor)


def test_the_visitor_view_keeps_only_what_visitors_may_see() -> None:
    started = {"reply_id": "r", "request_id": "req-1"}
    assert visitor_view.event("reply.started", started, False) == {"reply_id": "r"}
    failed = {"reply_id": "r", "error": {"code": "llm_bad_request", "message": "upstream said: /srv/x.pdf"}}
    assert visitor_view.event("reply.failed", failed, False) == {
        "reply_id": "r",
        "error": visitor_view.GENERIC_ERROR,
    }
    assert visitor_view.event("reply.delta", {"reply_id": "r", "text": "a"}, False) == {
        "reply_id": "r",
        "text": "a",
    }
    joined = {"dialog_id": "d", "operator_id": "u", "operator_name": None}
    assert visitor_view.event("dialog.operator_joined", joined, False) == {
        "dialog_id": "d",
        "operator_name": "Support",
    }
    assert visitor_view.event("balance.changed", {"balance_micros": 1}, True) is None, (
        "unknown kinds stay out"
    )
    frame = '{"id":"1-0","topic":"dialog:d","type":"document.status","data":{"filename":"x"}}'
    assert visitor_view.frame(frame, True) is None
    frame = '{"id":"1-0","topic":"dialog:d","type":"reply.started","data":{"reply_id":"r","request_id":"q"}}'
    shown = visitor_view.frame(frame, False)
    assert shown is not None
    assert orjson.loads(shown) == {
        "id": "1-0",
        "topic": "dialog:d",
        "type": "reply.started",
        "data": {"reply_id": "r"},
    }
