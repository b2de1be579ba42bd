"""Admin endpoints of the knowledge base: re-index documents after the embedding model changed."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.deps import AdminUser, SessionDep
from api.schemas import Strict
from services.accounts import audit
from services.knowledge import reindex

router = APIRouter(prefix="/api/admin", tags=["admin"])

REINDEX_STARTED = "reindex_started"


class ReindexIn(Strict):
    assistant_id: uuid.UUID | None = None
    # False: only documents indexed with another model than the configured one; True: every ready one.
    all: bool = False
    parallel: int = Field(default=1, ge=1, le=32)


class ReindexOut(BaseModel):
    run_id: uuid.UUID
    documents: int
    model: str


class ReindexProgressOut(BaseModel):
    run_id: uuid.UUID
    waiting: int
    indexing: int
    ready: int
    failed: int


@router.post("/reindex", status_code=status.HTTP_202_ACCEPTED, response_model=ReindexOut)
async def start_reindex(body: ReindexIn, admin: AdminUser, session: SessionDep) -> ReindexOut:
    run = await reindex.start(session, body.assistant_id, body.all, body.parallel)
    audit.record(
        session,
        REINDEX_STARTED,
        actor_id=admin.id,
        subject=str(run.id),
        details={"assistant_id": str(body.assistant_id) if body.assistant_id else None,
                 "all": body.all, "documents": run.documents, "model": run.model},
    )  # fmt: skip
    return ReindexOut(run_id=run.id, documents=run.documents, model=run.model)


@router.get("/reindex/{run_id}", response_model=ReindexProgressOut)
async def reindex_progress(run_id: uuid.UUID, _: AdminUser, session: SessionDep) -> ReindexProgressOut:
    p = await reindex.progress(session, run_id)
    return ReindexProgressOut(
        run_id=p.run_id, waiting=p.waiting, indexing=p.indexing, ready=p.ready, failed=p.failed
    )
