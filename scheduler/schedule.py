"""Celery beat's schedule. Every job expires, so runs missed while workers were down do not pile up."""

from __future__ import annotations

from typing import Any

from core.queues import ROUTES, TASKS
from core.settings import Settings
from scheduler.jobs import maintenance_schedule


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    interval = settings.reaper_interval_seconds
    return {
        "reap-silent-replies": {
            "task": TASKS.reap_replies,
            "schedule": interval,
            "options": {"queue": ROUTES[TASKS.reap_replies], "expires": interval},
        },
        "reap-silent-documents": {
            "task": TASKS.reap_documents,
            "schedule": interval,
            "options": {"queue": ROUTES[TASKS.reap_documents], "expires": interval},
        },
        # Records each webhook bot's pending updates and last error; re-registers a lost webhook.
        "check-telegram-webhooks": {
            "task": TASKS.telegram_check_webhooks,
            "schedule": settings.telegram_webhook_check_seconds,
            "options": {
                "queue": ROUTES[TASKS.telegram_check_webhooks],
                "expires": settings.telegram_webhook_check_seconds,
            },
        },
        # Delivers what chats were owed long ago and still wait for (the run sending it was lost).
        "sweep-telegram-sends": {
            "task": TASKS.telegram_sweep_sends,
            "schedule": settings.telegram_send_sweep_seconds,
            "options": {
                "queue": ROUTES[TASKS.telegram_sweep_sends],
                "expires": settings.telegram_send_sweep_seconds,
            },
        },
        **_billing_schedule(settings),
        **maintenance_schedule(settings),
    }


def _billing_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    if not settings.billing_enabled:
        return {}
    sweep = settings.billing_hold_sweep_seconds
    jobs: dict[str, dict[str, Any]] = {
        # Settles holds whose settle task was lost (e.g. the broker was down when the reply ended).
        "sweep-stale-holds": {
            "task": TASKS.sweep_holds,
            "schedule": sweep,
            "options": {"queue": ROUTES[TASKS.sweep_holds], "expires": sweep},
        },
    }
    if settings.reconcile_enabled:
        every = settings.reconcile_interval_seconds
        jobs["reconcile-balances"] = {
            "task": TASKS.reconcile_balances,
            "schedule": every,
            "options": {"queue": ROUTES[TASKS.reconcile_balances], "expires": every},
        }
    return jobs
