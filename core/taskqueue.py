"""The Celery application every process shares, and the one function that sends tasks.

Services never send tasks themselves: they register them on the session (``core.outbox``) and the unit
of work (``core.unit_of_work``) sends them here after the commit. ``workers/`` adds the task modules,
the worker signals and beat's schedule to this same application.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

from celery import Celery
from celery.signals import before_task_publish
from kombu.entity import Queue

from core.broker import REDIS_TRANSPORT
from core.logging import request_id_var
from core.outbox import PendingTask
from core.queues import QUEUES, ROUTES, queue_for
from core.settings import get_settings

log = logging.getLogger("chatai.dispatch")


@lru_cache
def celery_app() -> Celery:
    settings = get_settings()
    app = Celery("chatai", broker=settings.broker_url)
    app.conf.update(
        # kombu's Redis transport with the fix that keeps a worker alive through a Redis restart.
        broker_transport=REDIS_TRANSPORT if settings.broker_url.startswith("redis://") else None,
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
            # RabbitMQ: wait for the broker's ack of each publish. A producer never reads its socket, so
            # without it the first publish after the broker closed the connection is written into the
            # dead socket and lost, with no error for the retry policy to act on.
            "confirm_publish": True,
        },
        # A publish that cannot reach the broker fails fast so the API can answer 503.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        timezone="UTC",
        enable_utc=True,
    )
    return app


def _stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # Every send (the API, beat, a retry) carries its time: queue wait and the oldest message's age.
    if headers is not None:
        headers["sent_at"] = time.time()


before_task_publish.connect(_stamp_sent_at)


def send(task: PendingTask) -> None:
    """Send one task to its queue now, with the request id in its headers (blocking: call it in a thread
    from async code)."""
    headers = {"request_id": request_id_var.get()}
    queue = queue_for(task.name)
    sent = celery_app().send_task(
        task.name,
        args=list(task.args),
        queue=queue,
        headers=headers,
        **task.options,
    )
    # Ties the request id to the task id, so one chat turn can be followed into the worker's log.
    log.info("task sent", extra={"task_name": task.name, "queue": queue, "sent_task_id": sent.id})


def send_all(tasks: list[PendingTask]) -> None:
    for task in tasks:
        send(task)
