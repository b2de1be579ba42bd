"""widget hardening: per-assistant widget message budgets, a daily widget spending cap, and whether
widget visitors see citation titles

Revision ID: 0016
Revises: 0011
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0011"
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


def downgrade() -> None:
    op.drop_column("assistants", "widget_show_citations")
    op.drop_column("assistants", "widget_daily_spend_cap_micros")
    op.drop_column("assistants", "widget_messages_per_day")
    op.drop_column("assistants", "widget_messages_per_minute")
