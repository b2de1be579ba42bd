"""Operators: owners assign them to assistants; operators take dialogs over, answer, and hand them back."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.deps import BusDep, CurrentUser, PageDep, SessionDep
from api.schemas import AssignedOperatorOut, DialogOut, MessageIn, MessageOut, PageOut
from services.conversations import operators

router = APIRouter(prefix="/api", tags=["operators"])


@router.get("/assistants/{assistant_id}/operators", response_model=PageOut[AssignedOperatorOut])
async def list_operators(
    assistant_id: uuid.UUID, user: CurrentUser, session: SessionDep, page: PageDep
) -> PageOut[AssignedOperatorOut]:
    result = await operators.list_assigned(session, user, assistant_id, page.limit, page.cursor)
    return PageOut(
        items=[AssignedOperatorOut.model_validate(o) for o in result.items], next_cursor=result.next_cursor
    )


@router.put("/assistants/{assistant_id}/operators/{user_id}", response_model=AssignedOperatorOut)
async def assign_operator(
    assistant_id: uuid.UUID, user_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> AssignedOperatorOut:
    return AssignedOperatorOut.model_validate(await operators.assign(session, user, assistant_id, user_id))


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
