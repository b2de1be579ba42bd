"""A beat scheduler that sends only while it holds a Redis lock, so two beat processes never both run jobs.

Every beat process ticks; the one holding ``chatai:beat:lock`` sends due jobs and extends the lock, the
others stand by and try to take it each few seconds. A standby that takes over reads the active one's
last run times from Redis, so it continues the same periods instead of running every job at once.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, cast

import redis
from celery.beat import PersistentScheduler, ScheduleEntry
from redis.lock import Lock

from core.settings import get_settings

log = logging.getLogger("chatai.beat")

LOCK_KEY = "chatai:beat:lock"
LAST_RUN_KEY = "chatai:beat:last_run"


class LockedScheduler(PersistentScheduler):
    """``PersistentScheduler`` guarded by a ``redis-py`` lock with a TTL renewed on every tick."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()
        self._ttl = settings.beat_lock_ttl_seconds
        self._redis = redis.Redis.from_url(settings.redis_url)
        # thread_local=False: beat's embedded mode may tick from another thread than the one that acquired.
        self._lock: Lock = self._redis.lock(LOCK_KEY, timeout=self._ttl, thread_local=False)
        self._active = False
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold_lock():
            # Retry well within one TTL, so a dead active scheduler is replaced about one TTL later.
            return self._ttl / 3
        delay = super().tick(*args, **kwargs)
        self._share_last_runs()
        # Wake up before the lock expires to renew it, even when no job is due for a long time.
        return min(delay, self._ttl / 3)

    def _hold_lock(self) -> bool:
        try:
            if self._active:
                if self._lock.reacquire():
                    return True
                log.warning("beat lock lost; standing by")
                self._active = False
            if self._lock.acquire(blocking=False):
                self._active = True
                self._load_last_runs()
                log.info("beat lock acquired; this scheduler sends the periodic jobs")
                return True
        except redis.exceptions.LockError:
            # The lock expired under us (e.g. a long pause) and another scheduler may hold it now.
            log.warning("beat lock expired; standing by")
            self._active = False
        except redis.exceptions.RedisError as exc:
            # Without Redis nobody can prove they are alone, so nobody sends.
            log.warning("beat lock unavailable (%s); standing by", exc)
            self._active = False
        return False

    def _load_last_runs(self) -> None:
        # redis-py types the reply for decoding clients too; this one answers bytes.
        stored = cast(dict[bytes, bytes], self._redis.hgetall(LAST_RUN_KEY))
        for raw_name, raw_at in stored.items():
            entry: ScheduleEntry | None = self.schedule.get(raw_name.decode())
            if entry is not None:
                entry.last_run_at = datetime.fromtimestamp(float(raw_at), UTC)
        self.populate_heap()  # the next due times follow from the loaded ones

    def _share_last_runs(self) -> None:
        times = {
            name: entry.last_run_at.timestamp()
            for name, entry in self.schedule.items()
            if entry.last_run_at is not None
        }
        if times:
            try:
                self._redis.hset(LAST_RUN_KEY, mapping=times)
            except redis.exceptions.RedisError as exc:
                log.warning("could not share beat's last run times: %s", exc)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._active:
                # Released, the standby takes over at its next try instead of after the TTL.
                with contextlib.suppress(redis.exceptions.RedisError):
                    self._lock.release()
                self._active = False
