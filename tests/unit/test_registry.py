"""The queue registry is the single source of truth: every task has a queue, every queue a worker spec."""

from __future__ import annotations

import importlib

from core.queues import QUEUES, ROUTES, TASKS
from workers.app import TASK_MODULES, celery_app
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
    for name, spec in QUEUES.items():
        argv = worker_argv(name)
        assert argv[argv.index("-Q") + 1] == name
        assert argv[argv.index("-P") + 1] == spec.pool
        assert argv[argv.index("--prefetch-multiplier") + 1] == str(spec.prefetch_multiplier)
    # gevent has open problems with psycopg 3 and with asyncio under Celery.
    assert QUEUES["llm"].pool == "threads"


def test_reliability_settings() -> None:
    conf = celery_app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.broker_transport_options["visibility_timeout"] > 600
