"""Maintenance's hand-written SQL, tested directly in tests/integration/test_operations_queries.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, text
from sqlalchemy.ext.asyncio import AsyncSession

# Dialogs idle since ``cutoff``, a batch at a time; rows another transaction holds are left for later.
_DELETE_IDLE_DIALOGS = text(
    """
    DELETE FROM dialogs WHERE id IN (
        SELECT d.id FROM dialogs d
        WHERE d.created_at < :cutoff AND d.updated_at < :cutoff
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.dialog_id = d.id AND m.created_at >= :cutoff)
          AND NOT EXISTS (SELECT 1 FROM telegram_chats tc WHERE tc.dialog_id = d.id)
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    """
)


async def delete_idle_dialogs(session: AsyncSession, cutoff: datetime, batch: int) -> int:
    """Delete up to ``batch`` dialogs with no message since ``cutoff`` (not a Telegram chat's current
    one); how many went."""
    result = await session.execute(_DELETE_IDLE_DIALOGS, {"cutoff": cutoff, "batch": batch})
    assert isinstance(result, CursorResult)
    return result.rowcount or 0
