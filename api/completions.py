"""The HTTP answers of ``/v1/chat/completions``: an SSE stream of chunks, or one JSON completion.

Both run after the request's unit of work has committed and its generation task is sent: they follow
the new dialog's events through the hub, and the key's topic, where revocation ends them. A client that
goes away before the reply ends cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.dialog_events import events_of
from api.ws_hub import Hub
from services.accounts.api_keys import KeyHolder, key_topic
from services.openai_compat import turns
from services.openai_compat.responses import CompletionEvents

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def _cancel_unless_ended(
    events: CompletionEvents, holder: KeyHolder, started: turns.StartedCompletion
) -> None:
    if not events.reply_ended:
        with anyio.CancelScope(shield=True):  # runs even while the response is being cancelled
            await turns.cancel_in_own_unit(holder, started)


def stream_response(
    hub: Hub, holder: KeyHolder, started: turns.StartedCompletion, events: CompletionEvents
) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            async with events_of(hub, started.dialog_id, key_topic(holder.key_id)) as frames:
                async for frame in frames:
                    for obj in events.on_event(frame):
                        yield _sse(obj)
                    if events.finished:
                        break
            if not events.finished:
                yield _sse(events.lost()[0])
            if events.error is None:
                yield b"data: [DONE]\n\n"
        finally:
            # The client went away (the response is cancelled here), or the stream ended in an error.
            await _cancel_unless_ended(events, holder, started)

    return StreamingResponse(chunks(), media_type="text/event-stream", headers=SSE_HEADERS)


class CompletionResponse(Response):
    """Waits for the reply to end, then answers the whole ``chat.completion`` (or the error)."""

    def __init__(
        self, hub: Hub, holder: KeyHolder, started: turns.StartedCompletion, events: CompletionEvents
    ) -> None:
        super().__init__()
        self._args = (hub, holder, started, events)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub, holder, started, events = self._args

        async def reply_ended() -> None:
            async with events_of(hub, started.dialog_id, key_topic(holder.key_id)) as frames:
                async for frame in frames:
                    events.on_event(frame)
                    if events.finished:
                        return
            events.lost()

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        waiting, watching = asyncio.create_task(reply_ended()), asyncio.create_task(client_gone())
        try:
            await asyncio.wait({waiting, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, watching):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await _cancel_unless_ended(events, holder, started)
        if not events.finished:
            return  # the client has gone: nobody to answer
        if events.error is not None:
            status, body = events.error
            answer = JSONResponse({"error": body}, status_code=status)
        else:
            answer = JSONResponse(events.completion())
        await answer(scope, receive, send)
