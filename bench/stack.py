"""The system under test as real processes: embedded Postgres (own data dir and database), a Redis db of
its own, the fake LLM, one uvicorn API process and one llm worker process."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil
import psycopg
import redis

from bench.stats import tree_cpu_seconds
from core.embedded_db import ensure_server, sqlalchemy_url, stop_server
from tests.fixtures.database import migrate
from tests.fixtures.processes import Child, python_argv
from tests.fixtures.stack import GENEROUS_RATE_LIMITS, TEST_JWT_SECRET, FakeLLM, Stack
from workers.run import worker_argv

ROOT = Path(__file__).resolve().parents[1]
PGDATA = ROOT / ".data" / "bench-postgres"
LOG_DIR = ROOT / ".data" / "bench-logs"
DB_NAME = "chatai_bench"
API_KEY = "bench-key"
MAX_CONNECTIONS = 400


def redis_cpu_seconds(client: redis.Redis) -> float:
    """CPU of the whole redis-server (shared with anything else using it), from INFO cpu."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def prepare_database(pgdata: Path, db_name: str) -> tuple[str, str]:
    """Start (or find) the embedded server of ``pgdata`` with room for a whole stack's pools, create
    ``db_name`` afresh and migrate it. Returns (the server's libpq URI, the database's SQLAlchemy URL)."""
    libpq_uri = ensure_server(pgdata)
    with psycopg.connect(libpq_uri, autocommit=True) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
        too_few = row is not None and int(row[0]) < MAX_CONNECTIONS
        if too_few:
            # Each process holds its own pools (up to db_pool_size + overflow, plus the plain pool):
            # several worker processes outgrow the default 100.
            conn.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
    if too_few:
        stop_server(pgdata)
        libpq_uri = ensure_server(pgdata)
    with psycopg.connect(libpq_uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    database_url = sqlalchemy_url(libpq_uri, db_name)
    migrate(database_url)
    return libpq_uri, database_url


class BenchStack:
    def __init__(
        self,
        redis_url: str,
        llm_concurrency: int,
        log_level: str = "INFO",
        extra_env: dict[str, str] | None = None,
        api_processes: int = 1,
        db_name: str = DB_NAME,
    ) -> None:
        self.redis_url = redis_url
        self.db_name = db_name
        self.api_processes = api_processes
        self.extra_env = extra_env or {}
        self.llm_concurrency = llm_concurrency
        self.log_level = log_level
        self.redis = redis.Redis.from_url(redis_url)
        self.libpq_uri = ""
        self.database_url = ""
        self.fake_llm: FakeLLM | None = None
        self.stack: Stack | None = None
        self.api: Child | None = None
        self.worker: Child | None = None
        self.noop_worker: Child | None = None
        self._pg_started = False

    @property
    def broker_url(self) -> str:
        """The workers' broker: ``CELERY_BROKER_URL`` when the run sets one, else the Redis db."""
        return self.extra_env.get("CELERY_BROKER_URL", self.redis_url)

    # Start.

    def start(self) -> None:
        self.stack = Stack(self.start_dependencies(), LOG_DIR)
        self.api = self.stack.start_api(self.api_processes)
        self.worker = self.start_llm_worker()

    def start_dependencies(self) -> dict[str, str]:
        """Fresh logs and Redis db, the database and the fake LLM; returns the processes' environment."""
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for old in LOG_DIR.glob("*.log"):
            old.unlink()
        self.redis.flushdb()
        self.start_database()
        env = self.env()
        self.fake_llm = FakeLLM(LOG_DIR, env, api_key=API_KEY)
        env.update(self.fake_llm.env)
        return env

    def start_llm_worker(self) -> Child:
        """One llm worker as ``workers.run`` starts it; ready once it answers a Celery ping (its " ready."
        log line only appears at INFO)."""
        argv = worker_argv("llm", ["--loglevel", "INFO"])
        argv[argv.index("-c") + 1] = str(self.llm_concurrency)
        assert self.stack is not None
        worker = Child("worker-llm", argv, self.stack.env, LOG_DIR)
        self.stack.children.append(worker)  # stopped with the rest
        from celery import Celery

        control = Celery("bench-control", broker=self.broker_url).control
        deadline = time.monotonic() + 60
        while not control.ping(timeout=0.5):
            if worker.proc.poll() is not None:
                raise RuntimeError(f"the llm worker exited:\n{worker.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("the llm worker did not answer a ping within 60 s")
        return worker

    def start_database(self) -> None:
        self.libpq_uri, self.database_url = prepare_database(PGDATA, self.db_name)
        self._pg_started = True

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CHATAI_") and k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
        }
        env.update(
            CHATAI_ENV="test",
            CHATAI_JWT_SECRET=TEST_JWT_SECRET,
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CHATAI_DATA_DIR=str(LOG_DIR),
            CHATAI_LOG_LEVEL=self.log_level,
            CHATAI_ACCESS_TOKEN_TTL_SECONDS="3600",
            CHATAI_LLM_CONCURRENCY=str(self.llm_concurrency),
            **GENEROUS_RATE_LIMITS,
            # Holds reserve a reply's worst case until a billing worker settles it; none runs here.
            CHATAI_SIGNUP_CREDIT_MICROS=str(10**15),
            BENCH_REDIS_URL=self.redis_url,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start_noop_worker(self, concurrency: int) -> Child:
        argv = python_argv(
            "-m", "celery", "-A", "bench.noop_app", "worker", "-Q", "bench_noop", "-P", "threads",
            "-c", str(concurrency), "--prefetch-multiplier", "1", "-n", f"bench-noop-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        )  # fmt: skip
        self.noop_worker = Child("noop-worker", argv, self.env(), LOG_DIR)
        self.noop_worker.wait_for_log(" ready.", timeout=60)
        return self.noop_worker

    def stop_noop_worker(self) -> None:
        if self.noop_worker is not None:
            self.noop_worker.stop()
            self.noop_worker = None

    # Measurements.

    @property
    def postmaster_pid(self) -> int | None:
        try:
            return int((PGDATA / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def cpu_snapshot(self) -> dict[str, float]:
        """CPU seconds so far of each part of the system (Redis: the whole server)."""
        snap = {}
        for name, child in (("worker", self.worker), ("api", self.api)):
            if child is not None:
                snap[name] = tree_cpu_seconds(child.proc.pid)
        if self.fake_llm is not None:
            snap["fake_llm"] = tree_cpu_seconds(self.fake_llm.child.proc.pid)
        if (pid := self.postmaster_pid) is not None:
            snap["postgres"] = tree_cpu_seconds(pid)
        with contextlib.suppress(redis.RedisError):
            snap["redis"] = redis_cpu_seconds(self.redis)
        t = psutil.cpu_times()
        snap["machine"] = sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0)
        return snap

    def reply_status_counts(self) -> dict[str, int]:
        with psycopg.connect(self._db_uri()) as conn:
            rows = conn.execute(
                "SELECT status::text, count(*) FROM messages WHERE role = 'assistant' GROUP BY 1"
            ).fetchall()
        return {status: int(n) for status, n in rows}

    def _db_uri(self) -> str:
        return psycopg.conninfo.make_conninfo(self.libpq_uri, dbname=self.db_name)

    def seed_history(self, dialog_ids: list[str], turns: int, content: str, tokens: int | None) -> None:
        """Give each dialog ``turns`` finished messages (user and assistant in turn) before the run's own,
        with their stored token estimate as the API and the worker write it (where the schema has it)."""
        with psycopg.connect(self._db_uri()) as conn:
            stored = conn.execute(
                "SELECT 1 FROM information_schema.columns"
                " WHERE table_name = 'messages' AND column_name = 'tokens'"
            ).fetchone()
            column, value = (", tokens", ", %(tokens)s") if stored else ("", "")
            conn.execute(
                "INSERT INTO messages (id, owner_id, dialog_id, role, content, status, created_at,"
                f" completed_at, attempt{column})"
                " SELECT gen_random_uuid(), d.id_owner, d.id,"
                "  CAST(CASE WHEN g %% 2 = 0 THEN 'user' ELSE 'assistant' END AS message_role),"
                f"  %(content)s, 'completed', now(), now(), 1{value}"
                " FROM (SELECT id, owner_id AS id_owner FROM dialogs WHERE id = ANY(%(ids)s)) AS d,"
                "  generate_series(0, %(turns)s - 1) AS g ORDER BY d.id, g",
                {"ids": dialog_ids, "turns": turns, "content": content, "tokens": tokens},
            )

    def unfinished_replies(self) -> int:
        with psycopg.connect(self._db_uri()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM messages"
                " WHERE role = 'assistant' AND status IN ('queued', 'generating')"
            ).fetchone()
        return int(row[0]) if row else 0

    def wait_drained(self, timeout: float, settle: float = 5.0) -> tuple[bool, int]:
        """Wait until no reply is queued or generating. Returns (drained, stuck): replies whose count has
        not moved for ``settle`` s with the llm queue empty are stuck (their task ended without ending
        them; only the reaper, which runs under beat, would). On timeout the llm queue is purged."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.unfinished_replies()
            if n == 0:
                return True, 0
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= settle and self.redis.llen("llm") == 0:
                return True, n
            time.sleep(0.25)
        self.redis.delete("llm")
        return False, last

    def pause_llm_consumer(self, paused: bool) -> None:
        """Stop (or resume) the llm worker taking tasks, through Celery's remote control."""
        from celery import Celery

        control = Celery("bench-control", broker=self.broker_url).control
        replies = (control.cancel_consumer if paused else control.add_consumer)(
            "llm", reply=True, timeout=5, limit=1
        )
        if not replies:
            raise RuntimeError("the llm worker did not answer the remote control command")

    def discard_queued_replies(self) -> int:
        """Drop the llm queue and end the replies it held (they were only there to be accepted)."""
        self.redis.delete("llm")
        with psycopg.connect(self._db_uri()) as conn:
            cur = conn.execute(
                "UPDATE messages SET status = 'cancelled', completed_at = now()"
                " WHERE role = 'assistant' AND status = 'queued'"
            )
            return cur.rowcount

    # Stop.

    def stop(self) -> None:
        self.stop_noop_worker()
        if self.stack is not None:
            self.stack.stop()
        if self.fake_llm is not None:
            self.fake_llm.stop()
        if self._pg_started:
            stop_server(PGDATA)

    def check_alive(self) -> None:
        for child in (self.api, self.worker):
            if child is not None and child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited:\n{child.log_text()[-3000:]}")
