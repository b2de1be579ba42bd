"""A dialog's events for one HTTP response, from the process's WebSocket hub (one Redis subscription
per process, shared with the sockets) rather than a Redis connection of its own per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from prometheus_client import Counter, Gauge

from api.ws_hub import Hub
from core.events import dialog_topic

V1_STREAMS = Gauge("chatai_v1_streams", "Open /v1 completions waiting for their dialog's events")
V1_EVENTS = Counter("chatai_v1_events_delivered_total", "Dialog events delivered to /v1 completions")


class _Inbox:
    """Takes the hub's frames in place of a socket; ``None`` marks that the hub closed it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def send_text(self, data: str) -> None:
        self.queue.put_nowait(data)

    async def close(self, code: int, reason: str) -> None:
        self.queue.put_nowait(None)


@asynccontextmanager
async def events_of(
    hub: Hub, dialog_id: object, *topics: str
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Every event of the dialog's topic from its start (the dialog is new, so nothing is missed
    whenever this subscribes), and of ``topics`` from their retained start; ends if the hub drops it."""
    inbox = _Inbox()
    client = hub.attach(inbox, gauge=V1_STREAMS, delivered=V1_EVENTS)
    try:
        for topic in (dialog_topic(dialog_id), *topics):
            hub.subscribe(client, topic, topic, "0")
        yield _frames(inbox)
    finally:
        hub.detach(client)


async def _frames(inbox: _Inbox) -> AsyncIterator[dict[str, Any]]:
    while (text := await inbox.queue.get()) is not None:
        frame = orjson.loads(text)
        if "id" in frame:  # not the hub's "subscribed" notices
            yield frame
