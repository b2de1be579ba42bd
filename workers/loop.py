"""One asyncio event loop per worker process, on its own thread.

Celery's threads pool hands each generation to this loop and waits on the result, so hundreds of
concurrent streams share one loop (and one HTTP connection pool) instead of one thread each. The loop is
uvloop's: its transports and callbacks cost a fraction of the standard loop's CPU, and that loop's own
overhead is a large share of a streamed reply's cost.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = uvloop.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="chatai-event-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the process loop and wait for it (from a worker thread)."""
    future = asyncio.run_coroutine_threadsafe(coro, get_loop())
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


def forget_loop() -> None:
    """After a fork the loop's thread is gone; the child makes its own."""
    global _loop
    _loop = None
