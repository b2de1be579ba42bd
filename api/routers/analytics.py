"""Usage analytics: a tenant's series per assistant and period; admins may read any user or the platform."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep
from api.schemas import Out
from services.analytics import usage

router = APIRouter(prefix="/api/analytics", tags=["analytics"])


class UsagePoint(Out):
    period_start: datetime
    assistant_id: uuid.UUID | None  # None in the platform-wide series
    messages: int
    dialogs: int
    end_users: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    replies: int
    failed_replies: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class UsageOut(Out):
    items: list[UsagePoint]


@router.get("/usage", response_model=UsageOut)
async def get_usage(
    user: CurrentUser,
    session: SessionDep,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    assistant_id: uuid.UUID | None = None,
    granularity: Literal["day", "hour"] = "day",
    user_id: uuid.UUID | None = None,
    platform: bool = False,
) -> UsageOut:
    scope = await usage.resolve_scope(
        session, user, assistant_id=assistant_id, user_id=user_id, platform=platform
    )
    start, end = usage.resolve_range(granularity, from_, to, datetime.now().astimezone())
    rows = await usage.usage_series(session, scope, granularity, start, end)
    return UsageOut(items=[UsagePoint.model_validate(r) for r in rows])
