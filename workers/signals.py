"""Per-process setup of workers and the ids that follow a task through the logs."""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from core.db import reset_engines
from core.logging import configure_logging, request_id_var, task_id_var
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


@signals.task_postrun.connect
def _unbind_task_context(**_: Any) -> None:
    task_id_var.set(None)
    request_id_var.set(None)
