"""Celery tasks, one module per queue. They stay thin: decode arguments, call a service, and retry
infrastructure hiccups (the errors below); domain faults are handled inside the services."""

from __future__ import annotations

import kombu.exceptions
import psycopg
import psycopg_pool
import redis
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.unit_of_work import DispatchFailed

TRANSIENT = (
    OperationalError, PoolTimeout, psycopg.OperationalError, psycopg_pool.PoolTimeout,
    redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError, DispatchFailed,
)  # fmt: skip
