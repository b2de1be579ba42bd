"""api keys for the OpenAI-compatible /v1 API; where a dialog was opened, and a /v1 turn's own settings

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

dialog_source = postgresql.ENUM("app", "widget", "telegram", "api", name="dialog_source", create_type=False)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("assistant_id", sa.Uuid(), nullable=True),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["assistant_id"], ["assistants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    op.create_index("ix_api_keys_owner_id", "api_keys", ["owner_id"])
    op.create_index("ix_api_keys_assistant_id", "api_keys", ["assistant_id"])

    dialog_source.create(op.get_bind(), checkfirst=False)
    op.add_column("dialogs", sa.Column("source", dialog_source, server_default="app", nullable=False))
    op.execute("UPDATE dialogs SET source = 'widget' WHERE widget_end_user_id IS NOT NULL")
    op.execute("UPDATE dialogs SET source = 'telegram' WHERE id IN (SELECT dialog_id FROM telegram_chats)")
    op.add_column("dialogs", sa.Column("instructions", sa.Text(), nullable=True))
    op.add_column("dialogs", sa.Column("temperature", sa.Float(), nullable=True))
    op.add_column("dialogs", sa.Column("max_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("dialogs", "max_tokens")
    op.drop_column("dialogs", "temperature")
    op.drop_column("dialogs", "instructions")
    op.drop_column("dialogs", "source")
    dialog_source.drop(op.get_bind(), checkfirst=False)
    op.drop_index("ix_api_keys_assistant_id", table_name="api_keys")
    op.drop_index("ix_api_keys_owner_id", table_name="api_keys")
    op.drop_table("api_keys")
