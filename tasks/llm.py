"""The ``llm`` queue: reply generation and the reaper of silent replies."""

from __future__ import annotations

import uuid

from core.events import EventBus
from core.queues import TASKS
from core.redis import async_redis
from core.settings import get_settings
from core.unit_of_work import unit_of_work
from services.chat import generation, reaper
from tasks import TRANSIENT
from workers import loop
from workers.app import celery_app


@celery_app.task(
    name=TASKS.generate_reply, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5, acks_late=True
)
def generate_reply(reply_id: str, attempt: int = 1) -> str:
    # The threads pool enforces no time limits: the generation has its own deadline, this one is a backstop.
    deadline = get_settings().reply_time_limit_seconds + 60
    return loop.run(generation.generate_reply(uuid.UUID(reply_id), attempt), timeout=deadline)


@celery_app.task(name=TASKS.reap_replies, autoretry_for=TRANSIENT, max_retries=2)
def reap_replies() -> dict[str, int]:
    return loop.run(_reap(), timeout=120)


async def _reap() -> dict[str, int]:
    async with unit_of_work() as session:
        result = await reaper.reap(session, EventBus(async_client=async_redis()))
    return {"retried": len(result.retried), "failed": len(result.failed), "resent": len(result.resent)}
