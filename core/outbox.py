"""Tasks a unit of work wants started, held on the session until it commits.

Services call ``enqueue``; the boundary that commits (an API request, a task) sends them afterwards
and drops them on rollback, so no task ever runs for a row that was not written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

PENDING_KEY = "chatai_pending_tasks"
COMPENSATE_KEY = "chatai_compensations"
AFTER_COMMIT_KEY = "chatai_after_commit"


@dataclass(frozen=True)
class PendingTask:
    name: str
    args: tuple[Any, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


def _info(session: Session | AsyncSession) -> dict[str, Any]:
    return session.info


def enqueue(session: Session | AsyncSession, name: str, *args: Any, **options: Any) -> None:
    _info(session).setdefault(PENDING_KEY, []).append(PendingTask(name, args, options))


def on_dispatch_failure(
    session: Session | AsyncSession, undo: Callable[[AsyncSession], Awaitable[None]]
) -> None:
    """Register how to undo this unit of work if its tasks cannot be sent after commit."""
    _info(session).setdefault(COMPENSATE_KEY, []).append(undo)


def after_commit(session: Session | AsyncSession, action: Callable[[], Awaitable[object]]) -> None:
    """Run ``action`` once the unit of work has committed (e.g. publish an event about it)."""
    _info(session).setdefault(AFTER_COMMIT_KEY, []).append(action)


def take_after_commit(session: Session | AsyncSession) -> list[Callable[[], Awaitable[object]]]:
    actions: list[Callable[[], Awaitable[object]]] = _info(session).pop(AFTER_COMMIT_KEY, [])
    return actions


def take_pending(session: Session | AsyncSession) -> list[PendingTask]:
    pending: list[PendingTask] = _info(session).pop(PENDING_KEY, [])
    return pending


def take_compensations(session: Session | AsyncSession) -> list[Callable[[AsyncSession], Awaitable[None]]]:
    undos: list[Callable[[AsyncSession], Awaitable[None]]] = _info(session).pop(COMPENSATE_KEY, [])
    return undos


def clear(session: Session | AsyncSession) -> None:
    _info(session).pop(PENDING_KEY, None)
    _info(session).pop(COMPENSATE_KEY, None)
    _info(session).pop(AFTER_COMMIT_KEY, None)
