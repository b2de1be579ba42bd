"""What a Telegram chat is sent for a reply that failed: a chat shows no status, so the text says it."""

from __future__ import annotations

from services.telegram.sending import CUT_OFF_TEXT, FAILED_TEXT, failed_reply_text


def test_a_reply_that_failed_before_any_text_is_an_apology() -> None:
    assert failed_reply_text("") == FAILED_TEXT
    assert failed_reply_text("  \n") == FAILED_TEXT


def test_a_reply_cut_off_midway_keeps_its_text_and_says_it_was_cut_off() -> None:
    assert failed_reply_text("Echo: half an answer ") == f"Echo: half an answer\n\n{CUT_OFF_TEXT}"
