"""The queue registry is the single source of truth: every task has a queue, every queue a worker spec."""

from __future__ import annotations

import importlib

from workers.app import TASK_MODULES, celery_app
from workers.registry import QUEUES, ROUTES, TASKS
from workers.run import worker_argv


def test_every_registered_task_is_routed_to_a_known_queue() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)
    ours = {name for name in celery_app.tasks if name.startswith("chatai.")}
    assert ours == set(ROUTES), "each task in tasks/ has exactly one route, and each route a task"
    assert set(ROUTES.values()) <= set(QUEUES)
    names = {value for key, value in vars(TASKS).items() if not key.startswith("_")}
    assert names == set(ROUTES)


def test_worker_argv_comes_from_the_registry() -> None:
    argv = worker_argv("llm")
    assert argv[argv.index("-Q") + 1] == "llm"
    assert argv[argv.index("-P") + 1] == QUEUES["llm"].pool == "threads"
    assert argv[argv.index("--prefetch-multiplier") + 1] == "1"
    assert argv[argv.index("-P") + 1] != "gevent", "gevent has open problems with psycopg 3 and asyncio"


def test_reliability_settings() -> None:
    conf = celery_app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.broker_transport_options["visibility_timeout"] > 600
