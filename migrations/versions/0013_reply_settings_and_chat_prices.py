"""replies record their generation settings (model, max_tokens, temperature, system prompt version)
when accepted; assistants' system prompts are versioned; prices say whether a model is a chat or an
embedding model, and every assistant's model gets a chat price of its own

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# CHATAI_LLM_MODEL's default, and the default row's price as 0002 seeded it.
DEFAULT_CHAT_MODEL = "gpt-4o-mini"
SEED_INPUT, SEED_OUTPUT = 150_000, 600_000


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

    op.add_column("prices", sa.Column("kind", sa.String(length=16), server_default="chat", nullable=False))
    op.create_check_constraint(op.f("ck_prices_known_kind"), "prices", "kind IN ('chat', 'embedding')")
    # The local embedding model, and the default row: it now prices only an embedding model configured
    # without a row of its own, never a chat model.
    op.execute("UPDATE prices SET kind = 'embedding' WHERE model IN ('all-MiniLM-L6-v2', '*')")
    # An assistant on an embedding model (or on "*") was never a working chat setup, only a way to be
    # billed nothing: it moves to the default chat model.
    op.execute(
        f"UPDATE assistants SET model = '{DEFAULT_CHAT_MODEL}', updated_at = now() "
        "WHERE model IN (SELECT model FROM prices WHERE kind = 'embedding')"
    )
    # Every model in use without a price of its own, and the default chat model, keep what they cost
    # until now: the default row's price, as chat models of their own.
    op.execute(
        f"""
        INSERT INTO prices (model, kind, input_micros_per_mtok, output_micros_per_mtok, currency, updated_at)
        SELECT used.model, 'chat', coalesce(d.input_micros_per_mtok, {SEED_INPUT}),
               coalesce(d.output_micros_per_mtok, {SEED_OUTPUT}), coalesce(d.currency, 'USD'), now()
        FROM (SELECT DISTINCT model FROM assistants UNION SELECT '{DEFAULT_CHAT_MODEL}') AS used
        LEFT JOIN prices AS d ON d.model = '*'
        ON CONFLICT (model) DO NOTHING
        """
    )


def downgrade() -> None:
    # The chat price rows created above stay: with the default row back in use they price the same.
    op.drop_constraint(op.f("ck_prices_known_kind"), "prices", type_="check")
    op.drop_column("prices", "kind")
    op.drop_column("messages", "system_prompt_id")
    op.drop_column("messages", "temperature")
    op.drop_column("messages", "max_tokens")
    op.drop_column("assistants", "prompt_version_id")
    op.drop_index(op.f("ix_assistant_prompts_assistant_id"), table_name="assistant_prompts")
    op.drop_table("assistant_prompts")
