"""Celery tasks, one module per queue. They stay thin: decode arguments, call a service, and retry
infrastructure hiccups (the errors below); domain faults are handled inside the services."""

from __future__ import annotations

import psycopg
import psycopg_pool
import redis
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

TRANSIENT = (
    OperationalError, PoolTimeout, psycopg.OperationalError, psycopg_pool.PoolTimeout,
    redis.ConnectionError, redis.TimeoutError,
)  # fmt: skip
