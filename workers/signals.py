"""Per-process setup of workers and the ids that follow a task through the logs."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import signals
from prometheus_client import multiprocess

from core import metrics
from core.db import reset_engines
from core.logging import configure_logging, request_id_var, task_id_var
from core.queues import QUEUES, ROUTES
from core.redis import reset_clients
from core.settings import get_settings
from workers.loop import forget_loop

log = logging.getLogger("chatai.worker")


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(get_settings().log_level, process="worker")


@signals.worker_process_init.connect
def _fresh_process_state(**_: Any) -> None:
    # Pools, sockets and the loop thread inherited through fork must not be shared with the parent.
    reset_engines()
    reset_clients()
    forget_loop()


@signals.task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    task_id_var.set(task_id)
    request = getattr(task, "request", None)
    request_id_var.set(getattr(request, "request_id", None) if request else None)
    if task_id is not None and request is not None:
        _task_started[task_id] = time.perf_counter()
        sent_at = getattr(request, "sent_at", None)
        # A delayed retry waited on purpose; only a first delivery's wait measures the queue.
        if isinstance(sent_at, int | float) and not request.eta and not request.retries:
            metrics.TASK_QUEUE_WAIT.labels(*_labels(task)).observe(max(0.0, time.time() - sent_at))


@signals.task_postrun.connect
def _unbind_task_context(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    task_id_var.set(None)
    request_id_var.set(None)
    started = _task_started.pop(task_id, None) if task_id else None
    if task is not None and started is not None:
        queue, name = _labels(task)
        metrics.TASK_DURATION.labels(queue, name).observe(time.perf_counter() - started)
        metrics.TASKS_TOTAL.labels(queue, name, (state or "unknown").lower()).inc()


@signals.task_retry.connect
def _count_retry(sender: Any = None, **_: Any) -> None:
    if sender is not None:
        metrics.TASK_RETRIES.labels(*_labels(sender)).inc()


# --- metrics ------------------------------------------------------------------------------------------

_task_started: dict[str, float] = {}  # task id → start; a threads pool runs many at once


def _labels(task: Any) -> tuple[str, str]:
    name: str = getattr(task, "name", None) or "unknown"
    # The queue it came from (a task sent to every queue, like the canary's ping, is counted on each).
    delivery = getattr(getattr(task, "request", None), "delivery_info", None) or {}
    return delivery.get("routing_key") or ROUTES.get(name, "unknown"), name


def metrics_port(queue: str) -> int | None:
    settings = get_settings()
    if settings.worker_metrics_port is not None:
        return settings.worker_metrics_port or None
    if not settings.metrics_port or queue not in QUEUES:
        return None
    return settings.metrics_port + 1 + list(QUEUES).index(queue)


@signals.celeryd_after_setup.connect
def _serve_metrics(instance: Any = None, **_: Any) -> None:
    queues = sorted(instance.app.amqp.queues.consume_from) if instance is not None else []
    port = metrics_port(queues[0]) if len(queues) == 1 else get_settings().worker_metrics_port
    if metrics.in_multiprocess_mode():
        metrics.serve(port, metrics.multiprocess_registry())
    else:
        metrics.serve(port)


@signals.beat_init.connect
def _serve_beat_metrics(**_: Any) -> None:
    metrics.serve(metrics.port_at(metrics.BEAT_PORT_OFFSET), db_pools=False)


@signals.worker_process_shutdown.connect
def _forget_child_metrics(pid: int | None = None, **_: Any) -> None:
    if metrics.in_multiprocess_mode():
        multiprocess.mark_process_dead(pid or os.getpid())
