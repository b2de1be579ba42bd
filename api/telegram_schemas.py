"""Bodies of the Telegram bot endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from api.schemas import Out, Strict


class BotIn(Strict):
    assistant_id: uuid.UUID
    token: str = Field(min_length=1, max_length=200)


class BotOut(Out):
    id: uuid.UUID
    assistant_id: uuid.UUID
    username: str
    status: str
    # None: no webhook; the bot pool long-polls this bot.
    webhook_url: str | None
    disabled_reason: str | None
    paused_until: datetime | None
    pending_update_count: int
    last_webhook_error: str | None
    created_at: datetime


class WebhookAck(Out):
    ok: bool = True
