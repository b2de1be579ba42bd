"""widget hardening: per-assistant widget message budgets, a daily widget spending cap, whether widget
visitors see citation titles; operator invitations

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("assistants", sa.Column("widget_messages_per_minute", sa.Integer(), nullable=True))
    op.add_column("assistants", sa.Column("widget_messages_per_day", sa.Integer(), nullable=True))
    op.add_column("assistants", sa.Column("widget_daily_spend_cap_micros", sa.BigInteger(), nullable=True))
    op.add_column(
        "assistants",
        sa.Column("widget_show_citations", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "operator_invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("assistant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_operator_invitations_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_operator_invitations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_invitations")),
        sa.UniqueConstraint("assistant_id", "user_id", name=op.f("uq_operator_invitations_assistant_id")),
    )
    op.create_index(
        op.f("ix_operator_invitations_user_id"), "operator_invitations", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_operator_invitations_user_id"), table_name="operator_invitations")
    op.drop_table("operator_invitations")
    op.drop_column("assistants", "widget_show_citations")
    op.drop_column("assistants", "widget_daily_spend_cap_micros")
    op.drop_column("assistants", "widget_messages_per_day")
    op.drop_column("assistants", "widget_messages_per_minute")
