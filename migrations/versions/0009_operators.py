"""operators: assistant_operators, the dialog's holding operator, the author of a hand-written message

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The user_role enum has carried 'operator' since 0001; no ALTER TYPE is needed.
    op.create_table(
        "assistant_operators",
        sa.Column("assistant_id", sa.Uuid(), nullable=False),
        sa.Column("operator_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_assistant_operators_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["users.id"],
            name=op.f("fk_assistant_operators_operator_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("assistant_id", "operator_id", name=op.f("pk_assistant_operators")),
    )
    op.create_index(
        op.f("ix_assistant_operators_operator_id"), "assistant_operators", ["operator_id"], unique=False
    )
    # Nullable without a default: a catalog-only change, no table rewrite.
    op.add_column("dialogs", sa.Column("operator_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_dialogs_operator_id_users"), "dialogs", "users", ["operator_id"], ["id"], ondelete="SET NULL"
    )
    op.add_column("messages", sa.Column("author_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_messages_author_id_users"), "messages", "users", ["author_id"], ["id"], ondelete="SET NULL"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_messages_author_id_users"), "messages", type_="foreignkey")
    op.drop_column("messages", "author_id")
    op.drop_constraint(op.f("fk_dialogs_operator_id_users"), "dialogs", type_="foreignkey")
    op.drop_column("dialogs", "operator_id")
    op.drop_index(op.f("ix_assistant_operators_operator_id"), table_name="assistant_operators")
    op.drop_table("assistant_operators")
