"""Retention: dialogs with no activity for a configured number of days are deleted with their messages.

The current dialog of a Telegram chat stays (the chat row points at it and would go with it); the
usage rollups keep counting deleted dialogs, since they are stored apart from the raw rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, text
from sqlalchemy.ext.asyncio import AsyncSession

BATCH = 500

_DELETE_BATCH = text(
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


async def delete_old_dialogs_batch(session: AsyncSession, days: int, now: datetime | None = None) -> int:
    """Delete up to one batch of dialogs idle for ``days``; the caller commits and repeats until 0."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    # A DELETE gives a CursorResult (with rowcount); execute() is typed for any statement.
    result = cast(CursorResult[Any], await session.execute(_DELETE_BATCH, {"cutoff": cutoff, "batch": BATCH}))
    return result.rowcount or 0
