"""The ``billing`` queue: settle the holds of replies and of document indexing into charges, sweep lost
settlements, reconcile balances.

Each task is keyed on its row (the reply id; the document and its indexing run), so a redelivered or
repeated task books nothing twice.
"""

from __future__ import annotations

import asyncio
import uuid

from core.queues import TASKS
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from services.billing import holds, indexing, reconcile, settlements
from tasks import TRANSIENT
from workers import loop
from workers.app import celery_app

TIME_LIMIT = 60


@celery_app.task(
    name=TASKS.settle_reply, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=8, acks_late=True
)
def settle_reply(reply_id: str) -> str:
    return loop.run(_settle_with_waiting(uuid.UUID(reply_id)), timeout=TIME_LIMIT * 5)


async def _settle_with_waiting(reply_id: uuid.UUID) -> str:
    """Settle this reply with every reply waiting in the settlement list, a batch per transaction;
    returns this reply's outcome."""
    settings = get_settings()
    await asyncio.sleep(settings.billing_settle_linger_seconds)  # let a busy moment fill the batch
    await settlements.open_schedule()
    batch = [reply_id, *await settlements.take(settings.billing_settle_batch_size - 1)]
    outcome = ""
    while batch:
        try:
            async with unit_of_work() as session:
                results = await holds.settle_replies(session, batch)
        except BaseException:
            await settlements.put_back([r for r in batch if r != reply_id])  # this one: the task's retry
            raise
        outcome = outcome or results[0].outcome
        batch = await settlements.take(settings.billing_settle_batch_size)
    return outcome


async def _settle(reply_id: uuid.UUID) -> str:
    async with unit_of_work() as session:
        result = await holds.settle_reply(session, reply_id)
    return result.outcome


@celery_app.task(
    name=TASKS.settle_indexing, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=8, acks_late=True
)
def settle_indexing(document_id: str, run_id: str | None = None) -> str:
    return loop.run(
        _settle_indexing(uuid.UUID(document_id), uuid.UUID(run_id) if run_id else None), timeout=TIME_LIMIT
    )


async def _settle_indexing(document_id: uuid.UUID, run_id: uuid.UUID | None) -> str:
    async with unit_of_work() as session:
        result = await indexing.settle_indexing(session, document_id, run_id)
    return result.outcome


@celery_app.task(name=TASKS.sweep_holds, autoretry_for=TRANSIENT, max_retries=2)
def sweep_holds() -> int:
    return loop.run(_sweep(), timeout=TIME_LIMIT * 5)


async def _sweep() -> int:
    async with unit_of_work() as session:
        stale = await holds.stale_holds(session)
        stale_indexing = await indexing.stale_indexing_holds(session)
    settled = 0
    for reply_id in stale:  # one unit of work per reply: one bad row does not block the rest
        if await _settle(reply_id) == "settled":
            settled += 1
    for document_id, run_id in stale_indexing:
        if await _settle_indexing(document_id, run_id) == "settled":
            settled += 1
    return settled


@celery_app.task(name=TASKS.reconcile_balances, autoretry_for=TRANSIENT, max_retries=2)
def reconcile_balances() -> int:
    return loop.run(_reconcile(), timeout=TIME_LIMIT * 10)


async def _reconcile() -> int:
    async with unit_of_work() as session:
        result = await reconcile.reconcile(session)
    return len(result.mismatches)
