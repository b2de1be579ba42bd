from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile, status

from api.deps import BusDep, CurrentUser, PageDep, SessionDep, UserClaims
from api.ratelimits import searches_per_user, uploads_per_user
from api.schemas import DocumentOut, DocumentQueuedOut, PageOut, SearchHitOut, SearchIn, SearchOut
from api.security import MULTIPART_OVERHEAD_BYTES
from core.settings import get_settings
from services.errors import TooLarge
from services.knowledge import documents
from services.knowledge.storage import get_storage
from workers.rpc import embed_query

router = APIRouter(prefix="/api", tags=["knowledge"])


def _refuse_large_body(request: Request) -> None:
    limit = get_settings().max_upload_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD_BYTES:
        raise TooLarge(f"The file is larger than {limit} bytes", details={"max_bytes": limit})


@router.post(
    "/assistants/{assistant_id}/documents",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DocumentQueuedOut,
    dependencies=[Depends(uploads_per_user)],
)
async def upload_document(
    assistant_id: uuid.UUID,
    request: Request,
    file: Annotated[UploadFile, File()],
    user: CurrentUser,
    session: SessionDep,
    bus: BusDep,
) -> DocumentQueuedOut:
    _refuse_large_body(request)
    data = await file.read(get_settings().max_upload_bytes + 1)
    document = await documents.upload(
        session, bus, get_storage(), user, assistant_id, file.filename or "document", data
    )
    return DocumentQueuedOut(id=document.id, filename=document.filename, status=document.status.value)


@router.get("/assistants/{assistant_id}/documents", response_model=PageOut[DocumentOut])
async def list_documents(
    assistant_id: uuid.UUID, user: CurrentUser, session: SessionDep, page: PageDep
) -> PageOut[DocumentOut]:
    result = await documents.list_for_assistant(session, user, assistant_id, page.limit, page.cursor)
    return PageOut(
        items=[DocumentOut.model_validate(d) for d in result.items], next_cursor=result.next_cursor
    )


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(document_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> DocumentOut:
    return DocumentOut.model_validate(await documents.get_owned(session, user, document_id))


@router.delete("/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(document_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    await documents.delete(session, get_storage(), user, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/assistants/{assistant_id}/search",
    response_model=SearchOut,
    dependencies=[Depends(searches_per_user)],
)
async def search(assistant_id: uuid.UUID, body: SearchIn, claims: UserClaims) -> SearchOut:
    hits = await documents.search(claims.subject, assistant_id, body.query, body.top_k, embed_query)
    return SearchOut(
        items=[
            SearchHitOut(
                document_id=h.document_id,
                chunk_id=h.chunk_id,
                filename=h.filename,
                text=h.text,
                score=h.score,
                similarity=h.similarity,
            )
            for h in hits
        ]
    )
