"""Retention: dialogs with no activity for a configured number of days are deleted with their messages.

The current dialog of a Telegram chat stays (the chat row points at it and would go with it); the
usage rollups keep counting deleted dialogs, since they are stored apart from the raw rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.operations import queries

BATCH = 500


async def delete_old_dialogs_batch(session: AsyncSession, days: int, now: datetime | None = None) -> int:
    """Delete up to one batch of dialogs idle for ``days``; the caller commits and repeats until 0."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    return await queries.delete_idle_dialogs(session, cutoff, BATCH)
