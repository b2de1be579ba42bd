"""Loop-bound values: one per loop, never handed to another loop, gone with their loop."""

from __future__ import annotations

import asyncio
import gc

from core.loop_local import LoopLocal


class Client:
    pass


def test_each_loop_gets_its_own_value_and_a_closed_loop_takes_it_along() -> None:
    made: list[Client] = []

    def factory() -> Client:
        made.append(Client())
        return made[-1]

    local = LoopLocal(factory)

    async def twice() -> tuple[Client, Client]:
        return local.get(), local.get()

    first = asyncio.run(twice())
    second = asyncio.run(twice())
    assert first[0] is first[1] and second[0] is second[1]
    assert first[0] is not second[0]
    gc.collect()
    assert local.values() == [], "a finished loop's value is not kept"


def test_discard_makes_the_next_get_start_over() -> None:
    local = LoopLocal(Client)

    async def run() -> bool:
        before = local.get()
        local.discard()
        return local.get() is not before

    assert asyncio.run(run())
