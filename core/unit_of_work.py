"""One unit of work for every boundary: an API request, a task, a CLI command.

Services flush and register on the session what must follow the commit (``core.outbox``): tasks to
send, undo steps for when they cannot be sent, and actions such as publishing events. The boundary
commits, sends the tasks, then runs the actions. When the tasks cannot be sent the undo steps run in a
fresh transaction and ``DispatchFailed`` is raised, so nobody is left holding ids of work that will not
happen. Once the tasks are sent the work is accepted: an action that fails then (an event Redis could
not take) is logged, and replay and polling catch the client up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox, taskqueue
from core.db import async_sessionmaker_
from core.outbox import PendingTask

log = logging.getLogger("chatai.unit_of_work")


class DispatchFailed(Exception):
    """The unit of work committed, its tasks could not be sent, and its undo steps ran."""


@asynccontextmanager
async def unit_of_work() -> AsyncIterator[AsyncSession]:
    """A session that commits on success and then completes the work (see the module docstring).

    An exception with ``persist = True`` (a failure that must be recorded, such as the failed login that
    locks an account) still commits; its tasks are not sent."""
    async with async_sessionmaker_()() as session:
        try:
            yield session
        except BaseException as exc:
            if getattr(exc, "persist", False) is True:
                await session.commit()
            else:
                await session.rollback()
            outbox.clear(session)
            raise
        await session.commit()
        await complete(session)


async def complete(session: AsyncSession) -> None:
    """After the commit: send the registered tasks, or undo; then run the after-commit actions."""
    try:
        pending = outbox.take_pending(session)
        if pending:
            try:
                await asyncio.to_thread(taskqueue.send_all, pending)
            except Exception as exc:
                await _undo(session)
                raise DispatchFailed("the task queue is unavailable; the work was undone") from exc
        for action in outbox.take_after_commit(session):
            try:
                await action()
            except Exception:
                log.warning("an after-commit action failed; replay and polling catch up", exc_info=True)
    finally:
        outbox.clear(session)


async def send_now(tasks: list[PendingTask]) -> None:
    """Send tasks for work already committed outside a session (a raw-connection statement, state kept
    in Redis); raises ``DispatchFailed`` when the broker cannot take them."""
    try:
        await asyncio.to_thread(taskqueue.send_all, tasks)
    except Exception as exc:
        raise DispatchFailed("the task queue is unavailable") from exc


async def _undo(session: AsyncSession) -> None:
    undo_steps = outbox.take_compensations(session)
    log.warning("task dispatch failed; undoing the unit of work's writes")
    async with async_sessionmaker_()() as undo_session:
        for undo in undo_steps:
            await undo(undo_session)
        await undo_session.commit()
