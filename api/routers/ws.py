"""The WebSocket gateway ``GET /api/ws``: authenticate, then subscribe the socket to topics on the hub.

The session is checked again on every subscribe (token expiry, revocation, the account or the widget
session's owner still active), and the hub closes the socket (4001) when its token expires or a
revocation names it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from api.ws_hub import CLOSE_SESSION_ENDED, EVENT_ID, Client, Connection, Hub
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


async def _reject(websocket: Connection, close_code: int, code: str, message: str) -> None:
    try:
        await websocket.send_text(_error(code, message))
        # A close reason may hold at most 123 bytes.
        await websocket.close(close_code, f"{code}: {message}".encode()[:123].decode(errors="ignore"))
    except (RuntimeError, OSError):
        pass  # the client is already gone


async def _session_owner(session: AsyncSession, claims: AccessClaims) -> uuid.UUID:
    """Whom the socket's session acts for, checked now: the token has neither expired nor been revoked,
    and the account (for a widget session: its owner, and its dialog) is still there and active."""
    if claims.expires_at <= time.time():
        raise Unauthorized("The access token has expired", code="token_expired")
    if await revocation.is_revoked(claims):
        raise Unauthorized("The token has been revoked")
    if claims.kind == widget.TOKEN_KIND:
        return (await widget.session_owner(session, claims)).owner.id
    return (await auth.active_user(session, claims.subject)).id


async def _authenticate(websocket: WebSocket) -> tuple[AccessClaims, uuid.UUID] | None:
    """The caller's claims from ``?token=`` (discouraged: URLs end up in logs) or a first ``auth``
    frame, and whom they act for; None after closing the socket."""
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
    try:
        async with unit_of_work() as session:
            return claims, await _session_owner(session, claims)
    except Unauthorized as exc:
        await _reject(websocket, CLOSE_UNAUTHORIZED, exc.code, exc.message)
    except (OperationalError, DBAPIError):
        log.warning("ws: database unavailable during auth")
        await _reject(websocket, CLOSE_UNAVAILABLE, "unavailable", "try again later")
    return None


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
    try:
        async with unit_of_work() as session:
            await _session_owner(session, claims)
            internal = await resolve_topic(session, claims, topic)
            if internal is not None and claims.kind == widget.TOKEN_KIND:
                # An anonymous visitor: each frame as a visitor may see it.
                titles = await widget.citation_titles_allowed(session, claims)
                view = functools.partial(visitor_view.frame, titles_allowed=titles)
    except Unauthorized as exc:
        hub.detach(client)
        why = "token_expired" if exc.code == "token_expired" else revocation.REVOKED
        await _reject(client.conn, CLOSE_SESSION_ENDED, why, exc.message)
        return
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
    authenticated = await _authenticate(websocket)
    if authenticated is None:
        return
    claims, owner_id = authenticated
    user_id_var.set(str(owner_id))
    hub: Hub = websocket.app.state.hub
    sessions = revocation.sessions_of(claims, owner_id if claims.kind == widget.TOKEN_KIND else None)
    client = hub.attach(websocket, sessions, claims.issued_at, claims.expires_at)
    try:
        await _serve(websocket, hub, client, claims)
    except (OperationalError, DBAPIError):
        log.warning("ws: database unavailable")
        hub.close(client, CLOSE_UNAVAILABLE, "unavailable: resume with last_event_id")
    finally:
        hub.detach(client)
