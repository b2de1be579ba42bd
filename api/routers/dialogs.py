from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, status

from api.admission import admit_reply
from api.callers import DialogCaller
from api.deps import BusDep, CurrentUser, PageDep, SessionDep
from api.ratelimits import messages_per_user
from api.schemas import (
    DialogIn,
    DialogOut,
    MessageIn,
    MessageOut,
    PageOut,
    PostedUserMessage,
    PostMessageOut,
    QueuedReply,
)
from core.logging import request_id_var
from services.conversations import accept, dialogs, messages

router = APIRouter(prefix="/api", tags=["dialogs"])


@router.post("/dialogs", status_code=status.HTTP_201_CREATED, response_model=DialogOut)
async def create_dialog(body: DialogIn, user: CurrentUser, session: SessionDep) -> DialogOut:
    return DialogOut.model_validate(await dialogs.create(session, user, body.assistant_id, body.title))


@router.get("/dialogs", response_model=PageOut[DialogOut])
async def list_dialogs(
    user: CurrentUser, session: SessionDep, page: PageDep, assistant_id: uuid.UUID | None = None
) -> PageOut[DialogOut]:
    result = await dialogs.list_visible(session, user, page.limit, page.cursor, assistant_id)
    return PageOut(items=[DialogOut.model_validate(d) for d in result.items], next_cursor=result.next_cursor)


@router.get("/dialogs/{dialog_id}", response_model=DialogOut)
async def get_dialog(dialog_id: uuid.UUID, caller: DialogCaller, session: SessionDep) -> DialogOut:
    return caller.dialog_view(await dialogs.get_visible(session, caller.user, dialog_id))


@router.post(
    "/dialogs/{dialog_id}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PostMessageOut,
    # Admission first: a refused message costs no database connection.
    dependencies=[Depends(admit_reply), Depends(messages_per_user)],
)
async def post_message(
    dialog_id: uuid.UUID,
    body: MessageIn,
    caller: DialogCaller,
    session: SessionDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> PostMessageOut:
    turn = await accept.accept_message(
        session,
        caller.user,
        dialog_id,
        body.content,
        idempotency_key,
        request_id_var.get(),
        via_widget=caller.widget_dialog_id is not None,
    )
    return PostMessageOut(
        message=PostedUserMessage(
            id=turn.message.id, content=turn.message.content, created_at=turn.message.created_at
        ),
        reply=QueuedReply(id=turn.reply_id, status=turn.reply_status.value)
        if turn.reply_id is not None and turn.reply_status is not None
        else None,
    )


@router.get("/dialogs/{dialog_id}/messages", response_model=PageOut[MessageOut])
async def list_messages(
    dialog_id: uuid.UUID, caller: DialogCaller, session: SessionDep, page: PageDep
) -> PageOut[MessageOut]:
    result = await messages.list_for_dialog(session, caller.user, dialog_id, page.limit, page.cursor)
    return PageOut(items=[caller.message_view(m) for m in result.items], next_cursor=result.next_cursor)


@router.get("/messages/{message_id}", response_model=MessageOut)
async def get_message(message_id: uuid.UUID, caller: DialogCaller, session: SessionDep) -> MessageOut:
    message = await messages.get_visible(session, caller.user, message_id)
    caller.ensure_dialog(message.dialog_id, not_found="Message not found")
    return caller.message_view(message)


@router.post("/messages/{message_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=MessageOut)
async def cancel_reply(
    message_id: uuid.UUID, user: CurrentUser, session: SessionDep, bus: BusDep
) -> MessageOut:
    return MessageOut.of(await messages.cancel(session, user, message_id, bus))
