"""Who calls the dialog endpoints a widget may use: an account, or a widget session confined to one dialog.

Every other endpoint takes ``CurrentUser``, which refuses widget tokens (401).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from api.deps import SessionDep, _access_cookie, _bearer, current_user
from api.schemas import DialogOut, MessageOut
from core import revocation
from core.logging import user_id_var
from core.security import TokenError, decode_access_token
from models import User
from services.conversations import widget
from services.errors import NotFound, Unauthorized


@dataclass(frozen=True)
class Caller:
    # For a widget session: the assistant's owner, on whose behalf (and balance) the visitor chats.
    user: User
    widget_dialog_id: uuid.UUID | None = None
    widget_end_user_id: uuid.UUID | None = None
    citation_titles: bool = False  # a widget visitor may see the titles of cited documents

    def ensure_dialog(self, dialog_id: uuid.UUID, not_found: str = "Dialog not found") -> None:
        """A widget session reaches its own dialog only; anything else does not exist for it."""
        if self.widget_dialog_id is not None and dialog_id != self.widget_dialog_id:
            raise NotFound(not_found)

    def dialog_view(self, dialog: Any) -> DialogOut:
        """The dialog as this caller may see it: a widget visitor is not told which operator holds it."""
        shown = DialogOut.model_validate(dialog)
        return shown if self.widget_dialog_id is None else shown.model_copy(update={"operator_id": None})

    def message_view(self, message: Any) -> MessageOut:
        """The message as this caller may see it: staff in full, a widget visitor sanitized."""
        shown = MessageOut.of(message)
        return shown if self.widget_dialog_id is None else shown.for_visitor(self.citation_titles)

    @property
    def rate_key(self) -> str:
        return f"widget:{self.widget_end_user_id}" if self.widget_end_user_id else str(self.user.id)


async def dialog_caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie_token: Annotated[str | None, Depends(_access_cookie)],
) -> Caller:
    claims = None
    if credentials is not None:
        try:
            claims = decode_access_token(credentials.credentials)
        except TokenError as exc:
            raise Unauthorized(exc.message, code=exc.code) from exc
    if claims is None or claims.kind != widget.TOKEN_KIND:
        return Caller(await current_user(request, session, credentials, cookie_token))
    if await revocation.is_revoked(claims):
        raise Unauthorized("The session token has been revoked")
    visitor = await widget.session_owner(session, claims)
    user_id_var.set(str(visitor.owner.id))
    caller = Caller(visitor.owner, visitor.dialog_id, claims.subject, visitor.citation_titles)
    dialog_in_path = request.path_params.get("dialog_id")
    if dialog_in_path is not None:
        try:
            caller.ensure_dialog(uuid.UUID(str(dialog_in_path)))
        except ValueError as exc:
            raise NotFound("Dialog not found") from exc
    return caller


DialogCaller = Annotated[Caller, Depends(dialog_caller)]
