from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.deps import CurrentUser, PageDep, SessionDep
from api.schemas import AssistantIn, AssistantOut, AssistantPatch, PageOut
from services import assistants

router = APIRouter(prefix="/api/assistants", tags=["assistants"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AssistantOut)
async def create_assistant(body: AssistantIn, user: CurrentUser, session: SessionDep) -> AssistantOut:
    assistant = await assistants.create(session, user, body.model_dump())
    return AssistantOut.model_validate(assistant)


@router.get("", response_model=PageOut[AssistantOut])
async def list_assistants(user: CurrentUser, session: SessionDep, page: PageDep) -> PageOut[AssistantOut]:
    result = await assistants.list_owned(session, user, page.limit, page.cursor)
    return PageOut(
        items=[AssistantOut.model_validate(a) for a in result.items], next_cursor=result.next_cursor
    )


@router.get("/{assistant_id}", response_model=AssistantOut)
async def get_assistant(assistant_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> AssistantOut:
    return AssistantOut.model_validate(await assistants.get_owned(session, user, assistant_id))


@router.patch("/{assistant_id}", response_model=AssistantOut)
async def update_assistant(
    assistant_id: uuid.UUID, body: AssistantPatch, user: CurrentUser, session: SessionDep
) -> AssistantOut:
    changes = body.model_dump(exclude_unset=True)
    return AssistantOut.model_validate(await assistants.update(session, user, assistant_id, changes))


@router.post("/{assistant_id}/rotate-public-key", response_model=AssistantOut)
async def rotate_public_key(assistant_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> AssistantOut:
    return AssistantOut.model_validate(await assistants.rotate_public_key(session, user, assistant_id))


@router.delete("/{assistant_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_assistant(assistant_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    await assistants.delete(session, user, assistant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
