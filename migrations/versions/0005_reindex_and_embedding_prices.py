"""re-index runs on documents; the local embedding model's price row (free); chunks' filter statistics

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 02:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("index_run_id", sa.Uuid(), nullable=True))
    op.add_column("documents", sa.Column("reindex_run_id", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_documents_reindex_run_id",
        "documents",
        ["reindex_run_id"],
        unique=False,
        postgresql_where=sa.text("reindex_run_id IS NOT NULL"),
    )
    # An assistant belongs to one owner: without this, the planner multiplies the two filters'
    # selectivities and underestimates a tenant's rows by its share (choosing an exact sort over HNSW).
    op.execute(
        "CREATE STATISTICS chunks_assistant_owner (dependencies) ON assistant_id, owner_id FROM chunks"
    )
    # Embedding is charged at the embedding model's price; the local model costs nothing by default
    # (without this row it would fall back to the default row "*", priced for chat models).
    op.execute(
        "INSERT INTO prices (model, input_micros_per_mtok, output_micros_per_mtok, currency, updated_at) "
        "VALUES ('all-MiniLM-L6-v2', 0, 0, 'USD', now()) ON CONFLICT (model) DO NOTHING"
    )


def downgrade() -> None:
    op.execute("DELETE FROM prices WHERE model = 'all-MiniLM-L6-v2'")
    op.execute("DROP STATISTICS chunks_assistant_owner")
    op.drop_index(
        "ix_documents_reindex_run_id",
        table_name="documents",
        postgresql_where=sa.text("reindex_run_id IS NOT NULL"),
    )
    op.drop_column("documents", "reindex_run_id")
    op.drop_column("documents", "index_run_id")
