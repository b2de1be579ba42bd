from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from api.api_key_schemas import ApiKeyIn, ApiKeyOut, CreatedApiKeyOut
from api.deps import CurrentUser, PageDep, SessionDep
from api.ratelimits import client_ip
from api.schemas import PageOut
from services.accounts import api_keys

router = APIRouter(prefix="/api", tags=["api-keys"])


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, response_model=CreatedApiKeyOut)
async def create_api_key(
    body: ApiKeyIn, user: CurrentUser, session: SessionDep, request: Request
) -> CreatedApiKeyOut:
    created = await api_keys.create(session, user, body.name, body.assistant_id, client_ip(request))
    row = created.row
    return CreatedApiKeyOut(id=row.id, name=row.name, assistant_id=row.assistant_id, prefix=row.prefix,
                            key=created.key, created_at=row.created_at)  # fmt: skip


@router.get("/api-keys", response_model=PageOut[ApiKeyOut])
async def list_api_keys(user: CurrentUser, session: SessionDep, page: PageDep) -> PageOut[ApiKeyOut]:
    result = await api_keys.list_active(session, user, page.limit, page.cursor)
    return PageOut(items=[ApiKeyOut.model_validate(k) for k in result.items], next_cursor=result.next_cursor)


@router.delete("/api-keys/{api_key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    api_key_id: uuid.UUID, user: CurrentUser, session: SessionDep, request: Request
) -> Response:
    await api_keys.revoke(session, user, api_key_id, client_ip(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
