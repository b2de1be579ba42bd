"""Sends tasks by name to their queue, carrying the request id in the headers."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.logging import request_id_var
from core.outbox import PendingTask
from workers.registry import queue_for


def send(task: PendingTask) -> None:
    from workers.app import celery_app

    headers = {"request_id": request_id_var.get()}
    celery_app.send_task(
        task.name, args=list(task.args), queue=queue_for(task.name), headers=headers, **task.options
    )


def send_all(tasks: list[PendingTask]) -> None:
    for task in tasks:
        send(task)


async def complete_unit_of_work(session: AsyncSession) -> None:
    """After a commit: send the tasks it enqueued, then run its after-commit actions."""
    pending = outbox.take_pending(session)
    if pending:
        await asyncio.to_thread(send_all, pending)
    for action in outbox.take_after_commit(session):
        await action()
    outbox.clear(session)
