"""The workers' side of the shared Celery application: the task modules, beat's schedule, the signals."""

from __future__ import annotations

from celery import Celery

from core.settings import get_settings
from core.taskqueue import celery_app as shared_celery_app

TASK_MODULES = [
    "tasks.llm",
    "tasks.embeddings",
    "tasks.telegram",
    "tasks.billing",
    "tasks.analytics",
    "tasks.queries",
]


def create_celery() -> Celery:
    from scheduler.schedule import beat_schedule

    app = shared_celery_app()
    app.conf.update(
        include=TASK_MODULES,
        # Only the beat process holding the Redis lock sends periodic jobs (scheduler/lock.py).
        beat_scheduler="scheduler.lock:LockedScheduler",
        beat_schedule=beat_schedule(get_settings()),
    )
    return app


celery_app = create_celery()

import workers.signals  # noqa: E402, F401  (connects the worker signals)
