"""Celery beat's schedule. Every job expires, so runs missed while workers were down do not pile up."""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from workers.registry import ROUTES, TASKS


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    interval = settings.reaper_interval_seconds
    return {
        "reap-silent-replies": {
            "task": TASKS.reap_replies,
            "schedule": interval,
            "options": {"queue": ROUTES[TASKS.reap_replies], "expires": interval},
        },
    }
