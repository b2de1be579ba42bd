"""assistants: a greeting (Telegram's /start), and streaming answers into Telegram by editing one message

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "assistants",
        sa.Column("telegram_streaming", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("assistants", sa.Column("greeting", sa.Text(), nullable=True))
    op.add_column("telegram_sends", sa.Column("stream_message_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "telegram_sends", sa.Column("stream_chars", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("telegram_sends", "stream_chars")
    op.drop_column("telegram_sends", "stream_message_id")
    op.drop_column("assistants", "telegram_streaming")
    op.drop_column("assistants", "greeting")
