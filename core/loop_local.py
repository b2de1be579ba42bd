"""Values that belong to one event loop, such as clients whose connections the loop opened.

Keyed weakly by the loop itself: a closed loop's values go with it, and a new loop never inherits a
dead loop's clients (ids of collected objects are reused).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoopLocal(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        """The running loop's value, made on first use."""
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            value = self._values[loop] = self._factory()
        return value

    def discard(self) -> None:
        """Forget the running loop's value, so the next ``get`` makes a new one."""
        self._values.pop(asyncio.get_running_loop(), None)

    def values(self) -> list[T]:
        return list(self._values.values())

    def clear(self) -> None:
        self._values.clear()
