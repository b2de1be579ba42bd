"""Admission control's own check: more requests in flight in this process than allowed refuses new chat
work with 503 ``unavailable`` and a retry delay, before anything else is looked at."""

from __future__ import annotations

import pytest

from api.admission import InFlightMiddleware, admit_reply
from core.settings import get_settings
from services.errors import Overloaded


async def test_a_busy_process_refuses_new_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATAI_ADMISSION_MAX_IN_FLIGHT", "4")
    monkeypatch.setenv("CHATAI_ADMISSION_MAX_QUEUED_REPLIES", "0")  # no broker in a unit test
    monkeypatch.setenv("CHATAI_ADMISSION_RETRY_AFTER_SECONDS", "3")
    get_settings.cache_clear()
    try:
        monkeypatch.setattr(InFlightMiddleware, "in_flight", 4)
        await admit_reply()  # at the limit: admitted
        monkeypatch.setattr(InFlightMiddleware, "in_flight", 5)
        with pytest.raises(Overloaded) as refused:
            await admit_reply()
    finally:
        get_settings.cache_clear()
    assert (refused.value.status, refused.value.code, refused.value.retry_after) == (503, "unavailable", 3)
    assert refused.value.details["reason"] == "api_busy"


@pytest.mark.parametrize(("path", "counted"), [("/api/dialogs/x/messages", 1), ("/v1/chat/completions", 0)])
async def test_long_lived_completions_do_not_count_as_busy(path: str, counted: int) -> None:
    seen: list[int] = []

    async def app(scope: object, receive: object, send: object) -> None:
        seen.append(InFlightMiddleware.in_flight)

    before = InFlightMiddleware.in_flight
    await InFlightMiddleware(app)({"type": "http", "path": path}, None, None)  # type: ignore[arg-type]
    assert seen == [before + counted]
    assert InFlightMiddleware.in_flight == before
