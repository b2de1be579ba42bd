"""Telegram bots connected to assistants, the chats they talk in, and the messages they send."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Enum, ForeignKey, Identity, Index, LargeBinary, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdMixin, TimestampMixin, utcnow


class BotStatus(enum.StrEnum):
    active = "active"
    disabled = "disabled"


class SendState(enum.StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"
    dropped = "dropped"  # the chat blocked the bot or the bot was disabled before it went out


class TelegramBot(IdMixin, TimestampMixin, Base):
    __tablename__ = "telegram_bots"
    __table_args__ = (
        # A Telegram bot answers for one assistant at a time.
        Index("uq_telegram_bots_telegram_id", "telegram_id", unique=True),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    assistant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assistants.id", ondelete="CASCADE"), index=True
    )
    telegram_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str] = mapped_column(String(64))
    token_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    webhook_secret: Mapped[str] = mapped_column(String(64))  # the SHA-256 (hex) of the webhook's secret
    # None: the bot has no webhook and is long-polled by the bot pool.
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[BotStatus] = mapped_column(
        Enum(BotStatus, name="telegram_bot_status"), default=BotStatus.active
    )
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    paused_until: Mapped[datetime | None]
    pending_update_count: Mapped[int] = mapped_column(default=0)
    last_webhook_error: Mapped[str | None] = mapped_column(String(500))
    webhook_checked_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TelegramChat(IdMixin, TimestampMixin, Base):
    """One chat of one bot, and the dialog its messages go to (``/reset`` points it at a new one)."""

    __tablename__ = "telegram_chats"
    __table_args__ = (Index("uq_telegram_chats_bot_chat", "bot_id", "chat_id", unique=True),)

    bot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("telegram_bots.id", ondelete="CASCADE"))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    chat_type: Mapped[str] = mapped_column(String(32))
    dialog_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dialogs.id", ondelete="CASCADE"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TelegramSend(IdMixin, TimestampMixin, Base):
    """One answer owed to a chat: a fixed text or an assistant reply, sent in ``seq`` order per chat.

    ``key`` makes a redelivered update create no second answer; ``parts_sent`` makes a redelivered send
    task skip the parts Telegram already accepted.
    """

    __tablename__ = "telegram_sends"
    __table_args__ = (
        Index(
            "ix_telegram_sends_chat_pending",
            "chat_row_id",
            "seq",
            postgresql_where=text("state = 'pending'"),
        ),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    chat_row_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("telegram_chats.id", ondelete="CASCADE"))
    reply_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str | None] = mapped_column(Text)
    state: Mapped[SendState] = mapped_column(
        Enum(SendState, name="telegram_send_state"), default=SendState.pending
    )
    parts_sent: Mapped[int] = mapped_column(default=0)
    message_ids: Mapped[list[Any]] = mapped_column(JSONB, default=list, server_default="[]")
    error: Mapped[str | None] = mapped_column(String(500))
    # A streamed answer: the message edited while the reply is written, and how much of the text it shows.
    stream_message_id: Mapped[int | None] = mapped_column(BigInteger)
    stream_chars: Mapped[int] = mapped_column(default=0, server_default="0")
    sent_at: Mapped[datetime | None]
