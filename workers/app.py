"""The Celery application shared by the API (to send tasks by name) and every worker."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from core.settings import get_settings
from workers.registry import QUEUES, ROUTES

TASK_MODULES = [
    "tasks.llm",
    "tasks.embeddings",
    "tasks.telegram",
    "tasks.billing",
    "tasks.analytics",
    "tasks.queries",
]


def create_celery() -> Celery:
    settings = get_settings()
    app = Celery("chatai", broker=settings.broker_url, include=TASK_MODULES)
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_routes={name: {"queue": queue} for name, queue in ROUTES.items()},
        task_default_queue="llm",
        task_create_missing_queues=False,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task's effect is keyed on its row, so running twice is safe; losing one is not.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=False,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        # Task events cost a broker publish per task state; Flower switches them on while it watches.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds,
            "unacked_restore_interval": 30,
        },
        # A publish that cannot reach the broker fails fast so the API can answer 503.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        # Only the beat process holding the Redis lock sends periodic jobs (scheduler/lock.py).
        beat_scheduler="scheduler.lock:LockedScheduler",
        timezone="UTC",
        enable_utc=True,
    )
    from scheduler.schedule import beat_schedule

    app.conf.beat_schedule = beat_schedule(settings)
    return app


celery_app = create_celery()

import workers.signals  # noqa: E402, F401  (connects the worker signals)
