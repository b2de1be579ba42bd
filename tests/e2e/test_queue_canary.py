"""The queue canary through real processes: beat pings every queue, the workers that exist consume them,
and a queue nobody consumes shows up as not consuming in ``GET /api/admin/queues``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.queues import QUEUES
from tests.fixtures.api import signup
from tests.fixtures.billing import make_admin
from tests.fixtures.processes import eventually_async
from tests.fixtures.stack import Stack, running_stack

STALE = 5


@pytest.fixture(scope="module")
def canary_stack(stack_env: dict[str, str], log_dir: Any) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_CANARY_INTERVAL_SECONDS": "1",
        "CHATAI_CANARY_STALE_SECONDS": str(STALE),
        "CHATAI_ANALYTICS_ENABLED": "false",
    }
    # Only the analytics queue has a worker; every other queue's pings stay unconsumed.
    with running_stack(env, log_dir, workers=("analytics",), beat=True) as system:
        yield system


async def test_canary_shows_which_queues_are_consumed(canary_stack: Stack, database_url: str) -> None:
    async with httpx.AsyncClient(base_url=canary_stack.base_url, timeout=30) as http:
        admin = await signup(http, "admin")
        user = await signup(http, "user")
        make_admin(database_url, admin.user_id)

        r = await http.get("/api/admin/queues", headers=user.headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"

        latest: dict[str, dict[str, Any]] = {}

        async def refresh() -> dict[str, dict[str, Any]]:
            r = await http.get("/api/admin/queues", headers=admin.headers)
            assert r.status_code == 200, r.text
            latest.update({q["queue"]: q for q in r.json()["items"]})
            return latest

        async def pinged_everywhere() -> bool:
            health = await refresh()
            return health["analytics"]["consuming"] and all(q["last_sent_at"] for q in health.values())

        await eventually_async(
            pinged_everywhere, 60, "pings sent to every queue and the analytics one consumed", interval=0.2
        )
        assert set(latest) == set(QUEUES)
        assert latest["analytics"]["latency_seconds"] is not None
        assert latest["analytics"]["latency_seconds"] < STALE
        for queue in set(QUEUES) - {"analytics"}:
            assert latest[queue]["consuming"] is False, latest[queue]
            assert latest[queue]["last_consumed_at"] is None
            # The pings nobody took wait in the queue, and the oldest of them ages.
            waiting = latest[queue]
            assert waiting["depth"] >= 1 and waiting["oldest_message_age_seconds"] > 0, waiting

        # The analytics worker stops: its queue turns to not consuming after the stale time.
        next(c for c in canary_stack.children if c.name.startswith("worker-analytics")).stop()

        async def analytics_stopped() -> bool:
            return not (await refresh())["analytics"]["consuming"]

        await eventually_async(
            analytics_stopped, STALE * 6, "the stopped queue to show as not consuming", interval=0.2
        )
