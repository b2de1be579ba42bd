"""Telegram bots: connect, pause, resume and disconnect (``/api/bots``), and the webhook Telegram calls."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from api.deps import BusDep, CurrentUser, PageDep, SessionDep
from api.schemas import PageOut
from api.telegram_schemas import BotIn, BotOut, WebhookAck
from services.telegram import bots, inbox

router = APIRouter(prefix="/api", tags=["telegram"])


@router.post("/bots", status_code=status.HTTP_201_CREATED, response_model=BotOut)
async def connect_bot(body: BotIn, user: CurrentUser, session: SessionDep) -> BotOut:
    return BotOut.model_validate(await bots.connect(session, user, body.assistant_id, body.token))


@router.get("/bots", response_model=PageOut[BotOut])
async def list_bots(user: CurrentUser, session: SessionDep, page: PageDep) -> PageOut[BotOut]:
    result = await bots.list_owned(session, user, page.limit, page.cursor)
    return PageOut(items=[BotOut.model_validate(b) for b in result.items], next_cursor=result.next_cursor)


@router.get("/bots/{bot_id}", response_model=BotOut)
async def get_bot(bot_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> BotOut:
    return BotOut.model_validate(await bots.get_owned(session, user, bot_id))


@router.post("/bots/{bot_id}/pause", response_model=BotOut)
async def pause_bot(bot_id: uuid.UUID, user: CurrentUser, session: SessionDep, bus: BusDep) -> BotOut:
    return BotOut.model_validate(await bots.pause(session, user, bot_id, bus))


@router.post("/bots/{bot_id}/resume", response_model=BotOut)
async def resume_bot(bot_id: uuid.UUID, user: CurrentUser, session: SessionDep, bus: BusDep) -> BotOut:
    return BotOut.model_validate(await bots.resume(session, user, bot_id, bus))


@router.delete("/bots/{bot_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_bot(bot_id: uuid.UUID, user: CurrentUser, session: SessionDep) -> Response:
    await bots.delete(session, user, bot_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/telegram/webhook/{bot_id}", response_model=WebhookAck)
async def telegram_webhook(
    bot_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    secret: Annotated[str | None, Header(alias="X-Telegram-Bot-Api-Secret-Token")] = None,
) -> WebhookAck:
    await inbox.receive_webhook(session, bot_id, secret, await request.body())
    return WebhookAck()
