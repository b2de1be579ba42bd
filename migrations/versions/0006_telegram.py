"""telegram bots, chats and sends

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 02:09:53.883131
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telegram_bots",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("assistant_id", sa.Uuid(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("token_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("webhook_secret", sa.String(length=64), nullable=False),
        sa.Column("webhook_url", sa.String(length=500), nullable=True),
        sa.Column("status", sa.Enum("active", "disabled", name="telegram_bot_status"), nullable=False),
        sa.Column("disabled_reason", sa.String(length=300), nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_update_count", sa.Integer(), nullable=False),
        sa.Column("last_webhook_error", sa.String(length=500), nullable=True),
        sa.Column("webhook_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_telegram_bots_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_telegram_bots_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_bots")),
    )
    op.create_index(op.f("ix_telegram_bots_assistant_id"), "telegram_bots", ["assistant_id"], unique=False)
    op.create_index(op.f("ix_telegram_bots_owner_id"), "telegram_bots", ["owner_id"], unique=False)
    op.create_index("uq_telegram_bots_telegram_id", "telegram_bots", ["telegram_id"], unique=True)
    op.create_table(
        "telegram_chats",
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_type", sa.String(length=32), nullable=False),
        sa.Column("dialog_id", sa.Uuid(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["telegram_bots.id"],
            name=op.f("fk_telegram_chats_bot_id_telegram_bots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs.id"],
            name=op.f("fk_telegram_chats_dialog_id_dialogs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_telegram_chats_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_chats")),
    )
    op.create_index(op.f("ix_telegram_chats_dialog_id"), "telegram_chats", ["dialog_id"], unique=False)
    op.create_index(op.f("ix_telegram_chats_owner_id"), "telegram_chats", ["owner_id"], unique=False)
    op.create_index("uq_telegram_chats_bot_chat", "telegram_chats", ["bot_id", "chat_id"], unique=True)
    op.create_table(
        "telegram_sends",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("chat_row_id", sa.Uuid(), nullable=False),
        sa.Column("reply_id", sa.Uuid(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column(
            "state",
            sa.Enum("pending", "sent", "failed", "dropped", name="telegram_send_state"),
            nullable=False,
        ),
        sa.Column("parts_sent", sa.Integer(), nullable=False),
        sa.Column(
            "message_ids", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_row_id"],
            ["telegram_chats.id"],
            name=op.f("fk_telegram_sends_chat_row_id_telegram_chats"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reply_id"],
            ["messages.id"],
            name=op.f("fk_telegram_sends_reply_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_sends")),
        sa.UniqueConstraint("key", name=op.f("uq_telegram_sends_key")),
        sa.UniqueConstraint("seq", name=op.f("uq_telegram_sends_seq")),
    )
    op.create_index(
        "ix_telegram_sends_chat_pending",
        "telegram_sends",
        ["chat_row_id", "seq"],
        unique=False,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(op.f("ix_telegram_sends_reply_id"), "telegram_sends", ["reply_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_telegram_sends_reply_id"), table_name="telegram_sends")
    op.drop_index(
        "ix_telegram_sends_chat_pending",
        table_name="telegram_sends",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.drop_table("telegram_sends")
    op.drop_index("uq_telegram_chats_bot_chat", table_name="telegram_chats")
    op.drop_index(op.f("ix_telegram_chats_owner_id"), table_name="telegram_chats")
    op.drop_index(op.f("ix_telegram_chats_dialog_id"), table_name="telegram_chats")
    op.drop_table("telegram_chats")
    op.drop_index("uq_telegram_bots_telegram_id", table_name="telegram_bots")
    op.drop_index(op.f("ix_telegram_bots_owner_id"), table_name="telegram_bots")
    op.drop_index(op.f("ix_telegram_bots_assistant_id"), table_name="telegram_bots")
    op.drop_table("telegram_bots")
    for enum_name in ("telegram_send_state", "telegram_bot_status"):
        op.execute(f"DROP TYPE IF EXISTS {enum_name}")
