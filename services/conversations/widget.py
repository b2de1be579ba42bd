"""The chat widget: anonymous end-user sessions scoped to one dialog of an assistant.

A new visitor gets a random end-user id, which never leaves the server, and a resume token signed for it
(kept in their browser); each page load trades the resume token (with the assistant's public key) for a
short-lived ``widget`` token that reaches that visitor's dialog and nothing else. Staff see the visitor as
an opaque label, never the id. The dialog belongs
to the assistant's owner (who pays for its replies and sees it in their dialog list, marked as a widget
dialog). Origins are checked here because a browser always sends ``Origin`` on these requests; the token,
not the origin, is what authorizes everything afterwards.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.security import AccessClaims, create_access_token
from core.settings import get_settings
from models import Assistant, Dialog, DialogSource, DialogStatus, User
from services.errors import Forbidden, NotFound, Unauthorized

TOKEN_KIND = "widget"
RESUME_PREFIX = "wr1."


@dataclass(frozen=True)
class WidgetSession:
    token: str
    expires_in: int
    dialog_id: uuid.UUID
    resume_token: str  # the visitor's secret: continues this dialog on a later visit
    greeting: str | None  # the assistant's, shown by the widget unless the page sets its own


def _key() -> bytes:
    settings = get_settings()
    if settings.widget_secret:
        return settings.widget_secret.encode()
    return hmac.new(settings.jwt_secret.encode(), b"chatai widget visitors", hashlib.sha256).digest()


def _mac(purpose: bytes, payload: bytes) -> bytes:
    return hmac.new(_key(), purpose + b":" + payload, hashlib.sha256).digest()


def resume_token(assistant_id: uuid.UUID, end_user_id: uuid.UUID) -> str:
    payload = assistant_id.bytes + end_user_id.bytes
    encode = base64.urlsafe_b64encode
    return RESUME_PREFIX + (encode(payload) + b"." + encode(_mac(b"resume", payload))).decode()


def resumed_visitor(token: str | None, assistant_id: uuid.UUID) -> uuid.UUID | None:
    """The visitor a resume token was issued to for this assistant; None for anything else."""
    if not token or not token.startswith(RESUME_PREFIX):
        return None
    try:
        payload = base64.urlsafe_b64decode(token.removeprefix(RESUME_PREFIX).partition(".")[0])
    except (binascii.Error, ValueError):
        return None
    if len(payload) != 32 or payload[:16] != assistant_id.bytes:
        return None
    visitor = uuid.UUID(bytes=payload[16:])
    # Only the exact token this server issues for the visitor: signature and encoding both.
    return (
        visitor if hmac.compare_digest(token.encode(), resume_token(assistant_id, visitor).encode()) else None
    )


def visitor_label(end_user_id: uuid.UUID) -> str:
    """What staff see for a visitor: stable for them, and no use for reaching their dialog."""
    return "Visitor " + _mac(b"label", end_user_id.bytes).hex()[:6]


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, as browsers send it in ``Origin``; ValueError otherwise."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an origin is http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("an origin has no path, query, fragment or credentials")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("the port is not valid") from exc
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _same_origin(origin: str, candidates: tuple[str, ...]) -> bool:
    try:
        normalized = normalize_origin(origin)
    except ValueError:
        return False
    return any(normalized == candidate for candidate in candidates)


async def enabled_assistant(session: AsyncSession, public_key: str) -> Assistant:
    """The assistant behind a public key, if its owner's account is active; else 404."""
    assistant = await session.scalar(
        select(Assistant)
        .join(User, User.id == Assistant.owner_id)
        .where(Assistant.public_key == public_key, User.is_active)
    )
    if assistant is None:
        raise NotFound("No such widget")
    return assistant


def origin_allowed(assistant: Assistant, origin: str | None, own_origins: tuple[str, ...]) -> bool:
    """An origin the owner listed, or the API's own (the iframe page, which only listed origins can
    frame) while the list is not empty. No origin at all is refused: the widget runs in browsers."""
    allowed = tuple(assistant.widget_allowed_origins or ())
    if origin is None or not allowed:
        return False
    return _same_origin(origin, allowed) or _same_origin(origin, own_origins)


async def open_session(
    session: AsyncSession,
    public_key: str,
    origin: str | None,
    own_origins: tuple[str, ...],
    resume: str | None,
) -> WidgetSession:
    """A token for the visitor's latest open dialog with this assistant, or for a new one.

    Only a resume token this server signed names a returning visitor; anything else starts a new one."""
    assistant = await enabled_assistant(session, public_key)
    if not origin_allowed(assistant, origin, own_origins):
        raise Forbidden("This origin may not use the assistant's widget")
    end_user_id = resumed_visitor(resume, assistant.id)
    dialog = None
    if end_user_id is not None:
        dialog = await session.scalar(
            select(Dialog)
            .where(
                Dialog.assistant_id == assistant.id,
                Dialog.widget_end_user_id == end_user_id,
                Dialog.status == DialogStatus.active,
            )
            .order_by(Dialog.created_at.desc())
            .limit(1)
        )
    else:
        end_user_id = uuid.uuid4()
    if dialog is None:
        dialog = Dialog(
            owner_id=assistant.owner_id,
            assistant_id=assistant.id,
            widget_end_user_id=end_user_id,
            source=DialogSource.widget,
        )
        session.add(dialog)
        await session.flush()
    token, ttl = create_access_token(
        end_user_id,
        kind=TOKEN_KIND,
        ttl=get_settings().widget_session_ttl_seconds,
        dialog_id=str(dialog.id),
        assistant_id=str(assistant.id),
    )
    return WidgetSession(token, ttl, dialog.id, resume_token(assistant.id, end_user_id), assistant.greeting)


async def citation_titles_allowed(session: AsyncSession, claims: AccessClaims) -> bool:
    """Whether the owner lets the visitors of this widget session's assistant see cited titles."""
    shown = await session.scalar(
        select(Assistant.widget_show_citations).where(
            Assistant.id == uuid.UUID(str(claims.scope.get("assistant_id")))
        )
    )
    return bool(shown)


@dataclass(frozen=True)
class VisitorSession:
    owner: User  # on whose behalf (and balance) the visitor chats
    dialog_id: uuid.UUID  # the one dialog the session reaches
    citation_titles: bool  # the owner lets visitors see the titles of cited documents


async def session_owner(session: AsyncSession, claims: AccessClaims) -> VisitorSession:
    """The owner a widget token acts for and the one dialog it may reach; 401 when either is gone."""
    try:
        dialog_id = uuid.UUID(str(claims.scope.get("dialog_id")))
    except ValueError as exc:
        raise Unauthorized("This token cannot be used here") from exc
    row = (
        await session.execute(
            select(User, Assistant.widget_show_citations)
            .join(Dialog, Dialog.owner_id == User.id)
            .join(Assistant, Assistant.id == Dialog.assistant_id)
            .where(Dialog.id == dialog_id, User.is_active)
        )
    ).first()
    if row is None:
        raise Unauthorized("The widget session has ended")
    return VisitorSession(row[0], dialog_id, row[1])
