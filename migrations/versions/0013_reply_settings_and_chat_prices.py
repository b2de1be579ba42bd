"""replies record their generation settings (model, max_tokens, temperature, system prompt version)
when accepted; assistants' system prompts are versioned

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assistant_prompts",
        sa.Column("assistant_id", sa.Uuid(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["assistant_id"],
            ["assistants.id"],
            name=op.f("fk_assistant_prompts_assistant_id_assistants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_prompts")),
    )
    op.create_index(
        op.f("ix_assistant_prompts_assistant_id"), "assistant_prompts", ["assistant_id"], unique=False
    )
    op.add_column("assistants", sa.Column("prompt_version_id", sa.Uuid(), nullable=True))
    # Each assistant's current prompt becomes its first version.
    op.execute(
        "INSERT INTO assistant_prompts (id, assistant_id, system_prompt, created_at) "
        "SELECT gen_random_uuid(), id, system_prompt, now() FROM assistants"
    )
    op.execute(
        "UPDATE assistants SET prompt_version_id = p.id FROM assistant_prompts AS p "
        "WHERE p.assistant_id = assistants.id"
    )
    # Nullable without defaults: catalog-only changes, no rewrite of the messages table. Replies queued
    # before this migration have none, and are generated with their assistant's settings.
    op.add_column("messages", sa.Column("max_tokens", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("temperature", sa.Float(), nullable=True))
    op.add_column("messages", sa.Column("system_prompt_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "system_prompt_id")
    op.drop_column("messages", "temperature")
    op.drop_column("messages", "max_tokens")
    op.drop_column("assistants", "prompt_version_id")
    op.drop_index(op.f("ix_assistant_prompts_assistant_id"), table_name="assistant_prompts")
    op.drop_table("assistant_prompts")
