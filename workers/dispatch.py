"""Sends tasks by name to their queue, carrying the request id in the headers."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.logging import request_id_var
from core.outbox import PendingTask
from workers.registry import queue_for

log = logging.getLogger("chatai.dispatch")


def send(task: PendingTask) -> None:
    from workers.app import celery_app

    headers = {"request_id": request_id_var.get()}
    queue = queue_for(task.name)
    sent = celery_app.send_task(task.name, args=list(task.args), queue=queue, headers=headers, **task.options)
    # Ties the request id to the task id, so one chat turn can be followed into the worker's log.
    log.info("task sent", extra={"task_name": task.name, "queue": queue, "sent_task_id": sent.id})


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
