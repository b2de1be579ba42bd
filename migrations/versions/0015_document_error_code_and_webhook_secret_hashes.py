"""documents: error_code, the kind of a failure (document_too_large, …) beside its readable error;
telegram_bots: webhook secrets stored as their SHA-256

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("error_code", sa.String(length=50), nullable=True))
    # The secrets Telegram already holds keep working: the receiver compares hashes from now on.
    op.execute(
        "UPDATE telegram_bots SET webhook_secret = encode(sha256(convert_to(webhook_secret, 'UTF8')), 'hex')"
    )


def downgrade() -> None:
    # A hash cannot be turned back into its secret: after a downgrade every webhook bot must be
    # connected again (or its webhook re-registered) before its updates are accepted.
    op.drop_column("documents", "error_code")
