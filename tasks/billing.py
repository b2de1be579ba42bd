"""The ``billing`` queue: settle replies' holds into charges, sweep lost settlements, reconcile balances.

Each task is keyed on its row (the reply id), so a redelivered or repeated task books nothing twice.
"""

from __future__ import annotations

import uuid

from core.db import async_session_scope
from services.billing import holds, reconcile
from tasks import TRANSIENT
from workers import loop
from workers.app import celery_app
from workers.dispatch import complete_unit_of_work
from workers.registry import TASKS

TIME_LIMIT = 60


@celery_app.task(
    name=TASKS.settle_reply, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=8, acks_late=True
)
def settle_reply(reply_id: str) -> str:
    return loop.run(_settle(uuid.UUID(reply_id)), timeout=TIME_LIMIT)


async def _settle(reply_id: uuid.UUID) -> str:
    async with async_session_scope() as session:
        result = await holds.settle_reply(session, reply_id)
    await complete_unit_of_work(session)
    return result.outcome


@celery_app.task(name=TASKS.sweep_holds, autoretry_for=TRANSIENT, max_retries=2)
def sweep_holds() -> int:
    return loop.run(_sweep(), timeout=TIME_LIMIT * 5)


async def _sweep() -> int:
    async with async_session_scope() as session:
        stale = await holds.stale_holds(session)
    settled = 0
    for reply_id in stale:  # one unit of work per reply: one bad row does not block the rest
        if await _settle(reply_id) == "settled":
            settled += 1
    return settled


@celery_app.task(name=TASKS.reconcile_balances, autoretry_for=TRANSIENT, max_retries=2)
def reconcile_balances() -> int:
    return loop.run(_reconcile(), timeout=TIME_LIMIT * 10)


async def _reconcile() -> int:
    async with async_session_scope() as session:
        result = await reconcile.reconcile(session)
    return len(result.mismatches)
