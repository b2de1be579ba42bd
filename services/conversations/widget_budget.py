"""What one assistant's widget may cost its owner: message budgets shared by all its visitors, and the
owner's cap on a day's widget spending.

Per-visitor limits do not stop a script: it forges ``Origin`` and opens a new session (a new visitor) for
every message. These budgets count every widget message of the assistant together, whoever sends it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core import ratelimit
from core.settings import get_settings
from models import Assistant
from services.errors import RateLimited

# What the assistant's widget replies since ``since`` cost: the charge of a settled reply, the hold of an
# open one (its worst case, until it settles).
_SPENT_SINCE = text(
    """
    SELECT COALESCE(SUM(CASE WHEN r.id IS NULL THEN h.amount_micros
                             ELSE -COALESCE(c.amount_micros, 0) END), 0)
    FROM messages m
    JOIN dialogs d ON d.id = m.dialog_id
    JOIN transactions h ON h.idempotency_key = 'hold:' || m.id::text
    LEFT JOIN transactions r ON r.idempotency_key = 'release:' || m.id::text
    LEFT JOIN transactions c ON c.idempotency_key = 'charge:' || m.id::text
    WHERE m.owner_id = :owner_id AND m.created_at >= :since AND m.role = 'assistant'
      AND d.assistant_id = :assistant_id AND d.widget_end_user_id IS NOT NULL
    """
)


async def enforce(session: AsyncSession, assistant: Assistant) -> None:
    """Count one widget message against the assistant's budgets; ``RateLimited`` when one is spent."""
    settings = get_settings()
    per_minute = assistant.widget_messages_per_minute or settings.widget_messages_per_minute
    per_day = assistant.widget_messages_per_day or settings.widget_messages_per_day
    for limit in (f"{per_minute}/minute", f"{per_day}/day"):
        retry_after = await ratelimit.hit(limit, "widget-messages", str(assistant.id))
        if retry_after is not None:
            raise RateLimited(
                f"This chat has had too many messages; retry in {int(retry_after)} s", retry_after
            )
    if assistant.widget_daily_spend_cap_micros is not None:
        await _within_spending_cap(session, assistant, assistant.widget_daily_spend_cap_micros)


async def _within_spending_cap(session: AsyncSession, assistant: Assistant, cap: int) -> None:
    # Widget messages of one capped assistant queue here until the previous one committed its hold, so
    # concurrent messages cannot all pass the check on the same total.
    await session.execute(select(Assistant.id).where(Assistant.id == assistant.id).with_for_update())
    now = datetime.now(UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    params = {"owner_id": assistant.owner_id, "assistant_id": assistant.id, "since": day_start}
    spent = int(await session.scalar(_SPENT_SINCE, params) or 0)
    if spent >= cap:
        retry_after = max(1.0, (day_start + timedelta(days=1) - now).total_seconds())
        raise RateLimited("This chat has reached its limit for today", retry_after)
