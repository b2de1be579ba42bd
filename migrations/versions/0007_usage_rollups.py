"""usage rollups per assistant and period

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 03:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_rollups",
        sa.Column("granularity", sa.String(length=8), nullable=False),
        sa.Column("assistant_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("failed_replies", sa.Integer(), nullable=False),
        sa.Column("dialogs", sa.Integer(), nullable=False),
        sa.Column("end_users", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("latency_p50_ms", sa.Float(), nullable=True),
        sa.Column("latency_p95_ms", sa.Float(), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_usage_rollups_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_usage_rollups_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("granularity", "assistant_id", "period_start", name=op.f("pk_usage_rollups")),
    )
    op.create_index(
        "ix_usage_rollups_owner_period",
        "usage_rollups",
        ["owner_id", "granularity", "period_start"],
        unique=False,
    )
    # The rollups read a time range of messages; the existing indexes lead with the dialog or the owner.
    op.create_index("ix_messages_created_at", "messages", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_created_at", table_name="messages")
    op.drop_index("ix_usage_rollups_owner_period", table_name="usage_rollups")
    op.drop_table("usage_rollups")
