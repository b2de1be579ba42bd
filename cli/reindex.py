"""``chatai reindex``: start a re-index run from the command line, and optionally follow it to the end."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from core.unit_of_work import unit_of_work
from services.accounts import audit
from services.knowledge import reindex

POLL_SECONDS = 1.0


async def start(assistant_id: uuid.UUID | None, everything: bool, parallel: int) -> reindex.ReindexRun:
    async with unit_of_work() as session:
        run = await reindex.start(session, assistant_id, everything, parallel)
        audit.record(
            session,
            "reindex_started",
            subject=str(run.id),
            details={"assistant_id": str(assistant_id) if assistant_id else None, "all": everything,
                     "documents": run.documents, "model": run.model, "via": "cli"},
        )  # fmt: skip
    return run


async def follow(
    run_id: uuid.UUID, timeout: float, report: Callable[[reindex.RunProgress], None]
) -> reindex.RunProgress:
    """Poll the run until no document waits or is indexing (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        async with unit_of_work() as session:
            progress = await reindex.progress(session, run_id)
        if progress != last:
            report(progress)
            last = progress
        if (progress.waiting == 0 and progress.indexing == 0) or time.monotonic() > deadline:
            return progress
        await asyncio.sleep(POLL_SECONDS)
