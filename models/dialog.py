from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Enum, ForeignKey, Identity, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin, utcnow


class DialogStatus(enum.StrEnum):
    active = "active"
    closed = "closed"


class MessageRole(enum.StrEnum):
    user = "user"
    assistant = "assistant"


class DialogSource(enum.StrEnum):
    """Where a dialog was opened: the console or the API of ``/api``, the widget, Telegram, or ``/v1``."""

    app = "app"
    widget = "widget"
    telegram = "telegram"
    api = "api"


class ReplyStatus(enum.StrEnum):
    queued = "queued"
    generating = "generating"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATUSES = (ReplyStatus.completed, ReplyStatus.failed, ReplyStatus.cancelled)


class Dialog(IdMixin, TimestampMixin, Base):
    __tablename__ = "dialogs"

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    assistant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assistants.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[DialogStatus] = mapped_column(
        Enum(DialogStatus, name="dialog_status"), default=DialogStatus.active
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The anonymous visitor of a widget dialog (kept in their browser); None for other dialogs.
    widget_end_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    source: Mapped[DialogSource] = mapped_column(
        Enum(DialogSource, name="dialog_source"), default=DialogSource.app, server_default="app"
    )
    # A ``/v1`` request's own settings for its turn: its system messages (they follow the assistant's
    # system prompt), and the temperature and reply length it asked for. None: the assistant's.
    instructions: Mapped[str | None] = mapped_column(Text, default=None)
    temperature: Mapped[float | None] = mapped_column(default=None)
    max_tokens: Mapped[int | None] = mapped_column(default=None)
    # The person holding the dialog; while set, the assistant does not answer on its own.
    operator_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )

    __table_args__ = (
        Index(
            "ix_dialogs_widget_end_user",
            "assistant_id",
            "widget_end_user_id",
            postgresql_where=text("widget_end_user_id IS NOT NULL"),
        ),
    )


class Message(IdMixin, TimestampMixin, Base):
    """A user message or an assistant reply; a reply carries its generation state."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_dialog_seq", "dialog_id", "seq"),
        Index("ix_messages_created_at", "created_at"),  # analytics rollups read a time range
        Index(
            "uq_messages_owner_idempotency_key",
            "owner_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index(
            "ix_messages_unfinished",
            "status",
            "heartbeat_at",
            postgresql_where=text("status IN ('queued', 'generating')"),
        ),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    dialog_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dialogs.id", ondelete="CASCADE"))
    role: Mapped[MessageRole] = mapped_column(Enum(MessageRole, name="message_role"))
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ReplyStatus] = mapped_column(Enum(ReplyStatus, name="reply_status"))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    reply_to_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    # A reply's generation settings, fixed when its message is accepted: the hold is priced from them and
    # the worker generates from them (None on user messages, and on replies accepted before they existed).
    model: Mapped[str | None] = mapped_column(String(200))
    max_tokens: Mapped[int | None]
    temperature: Mapped[float | None]
    system_prompt_id: Mapped[uuid.UUID | None]  # an AssistantPrompt; no foreign key on this hot insert
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    # The estimated tokens of the final content (services.chat.prompt.message_tokens, without framing),
    # written with it; None on older rows, estimated when read.
    tokens: Mapped[int | None] = mapped_column(default=None)
    cost_micros: Mapped[int | None] = mapped_column(BigInteger)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(default=1)
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    # Who wrote an assistant-role message by hand (an operator); None for generated replies.
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
