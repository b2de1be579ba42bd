from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text, false
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin, utcnow


def new_public_key() -> str:
    return "pk_" + secrets.token_urlsafe(18)


class Assistant(IdMixin, TimestampMixin, Base):
    __tablename__ = "assistants"

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str] = mapped_column(String(200))
    temperature: Mapped[float] = mapped_column(default=0.7)
    max_tokens: Mapped[int] = mapped_column(default=1024)
    llm_provider: Mapped[str | None] = mapped_column(String(32))
    public_key: Mapped[str] = mapped_column(String(64), unique=True, default=new_public_key)
    # Knowledge retrieval; unset means the settings' defaults.
    retrieval_top_k: Mapped[int | None]
    retrieval_min_score: Mapped[float | None]
    # Origins (scheme://host[:port]) whose pages may open widget sessions and frame the widget page.
    widget_allowed_origins: Mapped[list[str]] = mapped_column(
        ARRAY(String(300)), default=list, server_default="{}"
    )
    # What a new Telegram chat is told on /start (unset: a greeting made from the name).
    greeting: Mapped[str | None] = mapped_column(Text)
    # Telegram chats see the answer as it is written (one message edited at most once a second).
    telegram_streaming: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The AssistantPrompt holding the current system_prompt: a reply records it when it is accepted.
    prompt_version_id: Mapped[uuid.UUID | None]
    # Widget traffic budgets (unset: the settings' defaults) and the owner's cap on a day's widget spending.
    widget_messages_per_minute: Mapped[int | None]
    widget_messages_per_day: Mapped[int | None]
    widget_daily_spend_cap_micros: Mapped[int | None] = mapped_column(BigInteger)
    # Widget visitors see the titles of the documents a reply cited (staff always see the citations).
    widget_show_citations: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AssistantPrompt(IdMixin, TimestampMixin, Base):
    """One version of an assistant's system prompt, never changed: a queued reply is generated from the
    version it was accepted with, whatever the assistant says by the time a worker takes it."""

    __tablename__ = "assistant_prompts"

    assistant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assistants.id", ondelete="CASCADE"), index=True
    )
    system_prompt: Mapped[str] = mapped_column(Text)
