"""messages: tokens, the estimated tokens of a message's final content, so that fitting a long history
into the prompt adds stored numbers instead of estimating every earlier message on every turn

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows keep NULL: their tokens are estimated when a prompt reads them, as before.
    op.add_column("messages", sa.Column("tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "tokens")
