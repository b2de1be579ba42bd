"""Operators: owners invite them to assistants and they accept; they take dialogs over, answer, and hand
them back."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.deps import BusDep, CurrentUser, PageDep, SessionDep
from api.schemas import (
    AssignedOperatorOut,
    DialogOut,
    InvitationSentOut,
    MessageIn,
    MessageOut,
    OperatorInvitationIn,
    OperatorInvitationOut,
    PageOut,
)
from services.conversations import operator_invitations, operators

router = APIRouter(prefix="/api", tags=["operators"])


@router.get("/assistants/{assistant_id}/operators", response_model=PageOut[AssignedOperatorOut])
async def list_operators(
    assistant_id: uuid.UUID, user: CurrentUser, session: SessionDep, page: PageDep
) -> PageOut[AssignedOperatorOut]:
    result = await operators.list_assigned(session, user, assistant_id, page.limit, page.cursor)
    return PageOut(
        items=[AssignedOperatorOut.model_validate(o) for o in result.items], next_cursor=result.next_cursor
    )


@router.post(
    "/assistants/{assistant_id}/operator-invitations",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=InvitationSentOut,
)
async def invite_operator(
    assistant_id: uuid.UUID, body: OperatorInvitationIn, user: CurrentUser, session: SessionDep
) -> InvitationSentOut:
    await operator_invitations.invite(session, user, assistant_id, body.email)
    return InvitationSentOut()


@router.get("/operator-invitations", response_model=PageOut[OperatorInvitationOut])
async def list_invitations(
    user: CurrentUser, session: SessionDep, page: PageDep
) -> PageOut[OperatorInvitationOut]:
    result = await operator_invitations.list_pending(session, user, page.limit, page.cursor)
    return PageOut(
        items=[OperatorInvitationOut.model_validate(i) for i in result.items], next_cursor=result.next_cursor
    )


@router.post("/operator-invitations/{invitation_id}/accept", status_code=status.HTTP_204_NO_CONTENT)
async def accept_invitation(invitation_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    await operator_invitations.accept(session, user, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/operator-invitations/{invitation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def decline_invitation(invitation_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    await operator_invitations.decline(session, user, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/assistants/{assistant_id}/operators/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unassign_operator(
    assistant_id: uuid.UUID, user_id: uuid.UUID, user: CurrentUser, session: SessionDep, bus: BusDep
) -> Response:
    await operators.unassign(session, user, assistant_id, user_id, bus)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/dialogs/{dialog_id}/takeover", response_model=DialogOut)
async def take_over(dialog_id: uuid.UUID, user: CurrentUser, session: SessionDep, bus: BusDep) -> DialogOut:
    return DialogOut.model_validate(await operators.take_over(session, user, dialog_id, bus))


@router.post("/dialogs/{dialog_id}/release", response_model=DialogOut)
async def release(dialog_id: uuid.UUID, user: CurrentUser, session: SessionDep, bus: BusDep) -> DialogOut:
    return DialogOut.model_validate(await operators.release(session, user, dialog_id, bus))


@router.post(
    "/dialogs/{dialog_id}/operator-messages", status_code=status.HTTP_201_CREATED, response_model=MessageOut
)
async def post_operator_message(
    dialog_id: uuid.UUID, body: MessageIn, user: CurrentUser, session: SessionDep, bus: BusDep
) -> MessageOut:
    return MessageOut.of(await operators.post_message(session, user, dialog_id, body.content, bus))
