"""chunks: drop the assistant → owner dependency statistics

Measured at 1M chunks (bench/knowledge.py): with them the planner served a tenant holding 5.5 % of the
rows through filtered HNSW (recall@10 0.64, p50 219 ms); without them it takes the b-tree on the assistant
and sorts exactly (recall 1.0, p50 91 ms). Large tenants use HNSW and tiny ones the b-tree either way.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 03:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP STATISTICS IF EXISTS chunks_assistant_owner")


def downgrade() -> None:
    op.execute(
        "CREATE STATISTICS chunks_assistant_owner (dependencies) ON assistant_id, owner_id FROM chunks"
    )
