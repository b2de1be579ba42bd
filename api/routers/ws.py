"""The WebSocket gateway ``GET /api/ws``: authenticate, then subscribe the socket to topics on the hub."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from sqlalchemy.exc import DBAPIError, OperationalError

from api.ws_hub import EVENT_ID, Client, Hub
from core import revocation
from core.logging import user_id_var
from core.security import AccessClaims, TokenError, decode_access_token
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from services.accounts import auth
from services.conversations import visitor_view, widget
from services.conversations.access import resolve_topic
from services.errors import Unauthorized

log = logging.getLogger("chatai.ws")
router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_UNAVAILABLE = 1013
MAX_TOPICS = 100
_PONG = '{"type":"pong"}'


def _error(code: str, message: str, **extra: Any) -> str:
    return orjson.dumps({"type": "error", "code": code, "message": message, **extra}).decode()


async def _receive(websocket: WebSocket) -> str | bytes | None:
    """The next client frame, or None once the socket is closed."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    return message.get("text") or message.get("bytes") or ""


def _subscribed_topic(client: Client, client_topic: str) -> str | None:
    return next((topic for topic, sub in client.subs.items() if sub.client_topic == client_topic), None)


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return frame if isinstance(frame, dict) else None


async def _reject(websocket: WebSocket, close_code: int, code: str, message: str) -> None:
    try:
        await websocket.send_text(_error(code, message))
        # A close reason may hold at most 123 bytes.
        await websocket.close(close_code, f"{code}: {message}".encode()[:123].decode(errors="ignore"))
    except (RuntimeError, OSError):
        pass  # the client is already gone


async def _authenticate(websocket: WebSocket) -> AccessClaims | None:
    """The caller's claims from ``?token=`` or a first ``auth`` frame; None after closing the socket."""
    token = websocket.query_params.get("token")
    if token is None:
        timeout = get_settings().ws_auth_timeout_seconds
        try:
            raw = await asyncio.wait_for(_receive(websocket), timeout)
        except TimeoutError:
            await _reject(
                websocket, CLOSE_UNAUTHORIZED, "unauthorized", f"no auth frame within {timeout:g} s"
            )
            return None
        if raw is None:
            return None
        frame = _parse(raw) or {}
        token = frame.get("token") if frame.get("type") == "auth" else None
        if not isinstance(token, str):
            await _reject(websocket, CLOSE_UNAUTHORIZED, "unauthorized", "the first frame must be auth")
            return None
    try:
        claims = decode_access_token(token)
    except TokenError as exc:
        await _reject(websocket, CLOSE_UNAUTHORIZED, exc.code, exc.message)
        return None
    if await revocation.is_revoked(claims):
        await _reject(websocket, CLOSE_UNAUTHORIZED, "unauthorized", "the token has been revoked")
        return None
    if claims.kind == "user":
        try:
            async with unit_of_work() as session:
                await auth.active_user(session, claims.subject)
        except Unauthorized as exc:
            await _reject(websocket, CLOSE_UNAUTHORIZED, "unauthorized", exc.message)
            return None
        except (OperationalError, DBAPIError):
            log.warning("ws: database unavailable during auth")
            await _reject(websocket, CLOSE_UNAVAILABLE, "unavailable", "try again later")
            return None
    return claims


async def _subscribe(hub: Hub, client: Client, claims: AccessClaims, frame: dict[str, Any]) -> None:
    topic, last_event_id = frame.get("topic"), frame.get("last_event_id")
    if not isinstance(topic, str) or not topic or len(topic) > 200:
        client.send(_error("bad_request", "subscribe needs a topic"))
        return
    if last_event_id is not None and not (
        isinstance(last_event_id, str) and EVENT_ID.fullmatch(last_event_id)
    ):
        client.send(_error("bad_request", 'last_event_id must be an event id, "0" or null', topic=topic))
        return
    if _subscribed_topic(client, topic) is None and len(client.subs) >= MAX_TOPICS:
        client.send(_error("bad_request", f"at most {MAX_TOPICS} topics per connection", topic=topic))
        return
    view = None
    async with unit_of_work() as session:
        internal = await resolve_topic(session, claims, topic)
        if internal is not None and claims.kind == widget.TOKEN_KIND:
            # An anonymous visitor: each frame as a visitor may see it.
            titles = await widget.citation_titles_allowed(session, claims)
            view = functools.partial(visitor_view.frame, titles_allowed=titles)
    if internal is None:
        client.send(_error("not_found", "no such topic", topic=topic))
        return
    hub.subscribe(client, internal, topic, last_event_id, view)


async def _serve(websocket: WebSocket, hub: Hub, client: Client, claims: AccessClaims) -> None:
    while not client.closed:
        raw = await _receive(websocket)
        if raw is None:
            return
        frame = _parse(raw) or {}
        kind = frame.get("type")
        if kind == "ping":
            client.send(_PONG)
        elif kind == "subscribe":
            await _subscribe(hub, client, claims, frame)
        elif kind == "unsubscribe":
            topic = _subscribed_topic(client, frame["topic"]) if isinstance(frame.get("topic"), str) else None
            if topic is not None:
                hub.unsubscribe(client, topic)
        else:
            client.send(
                _error("bad_request", "expected a JSON object with type subscribe, unsubscribe or ping")
            )


@router.websocket("/api/ws")
async def websocket_gateway(websocket: WebSocket) -> None:
    await websocket.accept()
    claims = await _authenticate(websocket)
    if claims is None:
        return
    user_id_var.set(str(claims.subject))
    hub: Hub = websocket.app.state.hub
    client = hub.attach(websocket)
    try:
        await _serve(websocket, hub, client, claims)
    except (OperationalError, DBAPIError):
        log.warning("ws: database unavailable")
        hub.close(client, CLOSE_UNAVAILABLE, "unavailable: resume with last_event_id")
    finally:
        hub.detach(client)
