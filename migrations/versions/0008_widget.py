"""widget: allowed origins per assistant, the anonymous end user of widget dialogs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 03:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "assistants",
        sa.Column(
            "widget_allowed_origins",
            postgresql.ARRAY(sa.String(length=300)),
            server_default="{}",
            nullable=False,
        ),
    )
    op.add_column("dialogs", sa.Column("widget_end_user_id", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_dialogs_widget_end_user",
        "dialogs",
        ["assistant_id", "widget_end_user_id"],
        postgresql_where=sa.text("widget_end_user_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_dialogs_widget_end_user", table_name="dialogs")
    op.drop_column("dialogs", "widget_end_user_id")
    op.drop_column("assistants", "widget_allowed_origins")
