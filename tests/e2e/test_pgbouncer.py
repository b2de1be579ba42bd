"""The stack behind PgBouncer in transaction mode, as the compose file runs it: chat turns, the ORM's and
the plain psycopg pool's statements, all through a pool of two server connections that every
transaction may land on. With server-side prepared statements on (psycopg prepares a statement after
its fifth run), the next transaction on another server connection fails with "prepared statement
_pg3_… does not exist"; ``CHATAI_DB_PGBOUNCER=1`` keeps them off."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.fixtures.api import new_dialog, poll_reply, post_message, signup
from tests.fixtures.processes import Child, eventually, free_port
from tests.fixtures.stack import FakeLLM, Stack, running_stack

EMBEDDED_POSTGRES_USER = "embedded_postgres"
PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")

pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer is not installed (apt-get install pgbouncer)"
)


class PgBouncer:
    """A PgBouncer in transaction mode in front of one database of the test Postgres."""

    def __init__(self, database_url: str, env: dict[str, str], log_dir: Path) -> None:
        assert PGBOUNCER is not None
        target = psycopg.conninfo.conninfo_to_dict(_libpq(database_url))
        self.port = free_port()
        self.dbname = str(target["dbname"])
        config = log_dir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"{self.dbname} = host={target['host']} port={target.get('port', 5432)} "
            f"dbname={self.dbname} user={target.get('user', 'postgres')}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = any\nadmin_users = postgres\n"
            "pool_mode = transaction\n"
            # Fewer server connections than the processes' pools: transactions share them.
            "default_pool_size = 2\nmax_client_conn = 500\n"
        )
        config.chmod(0o644)
        argv = [PGBOUNCER, str(config)]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root: run it as the embedded Postgres does
            argv = ["runuser", "-u", EMBEDDED_POSTGRES_USER, "--", *argv]
        self.child = Child("pgbouncer", argv, env, log_dir)
        eventually(self._answers, 20, "PgBouncer to accept connections")

    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def _answers(self) -> bool:
        if self.child.proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited:\n{self.child.log_text()[-2000:]}")
        try:
            with psycopg.connect(self._admin_uri(), autocommit=True, prepare_threshold=None):
                return True
        except psycopg.OperationalError:
            return False

    def _admin_uri(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/pgbouncer"

    def transactions(self) -> int:
        """Transactions PgBouncer has passed to the database (its SHOW STATS)."""
        with psycopg.connect(self._admin_uri(), autocommit=True, prepare_threshold=None) as conn:
            cur = conn.execute("SHOW STATS")
            names = [c.name for c in cur.description or []]
            for row in cur.fetchall():
                stats = dict(zip(names, row, strict=True))
                if stats["database"] == self.dbname:
                    return int(stats["total_xact_count"])
        return 0

    def stop(self) -> None:
        self.child.stop()


def _libpq(url: str) -> str:
    from core.db import to_libpq

    return to_libpq(url)


@pytest.fixture(scope="module")
def pgbouncer(database_url: str, stack_env: dict[str, str], log_dir: Path) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(database_url, stack_env, log_dir)
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="module")
def stack(
    stack_env: dict[str, str], fake_llm: FakeLLM, pgbouncer: PgBouncer, log_dir: Path
) -> Iterator[Stack]:
    env = {**stack_env, **fake_llm.env, "DATABASE_URL": pgbouncer.url(), "CHATAI_DB_PGBOUNCER": "1"}
    with running_stack(env, log_dir, workers=("llm", "billing")) as system:
        yield system


async def test_chat_turns_run_through_pgbouncer_in_transaction_mode(
    client: httpx.AsyncClient, pgbouncer: PgBouncer
) -> None:
    before = pgbouncer.transactions()
    alice = await signup(client, "alice")
    _, dialog_id = await new_dialog(client, alice)
    # More turns than psycopg's prepare threshold (5): every statement of a turn runs often enough to be
    # prepared if preparing were on.
    for turn in range(8):
        posted = await post_message(client, alice, dialog_id, f"turn {turn} [[tokens:5]]")
        reply = await poll_reply(client, alice, posted["reply"]["id"])
        assert reply["status"] == "completed", reply
    r = await client.get(f"/api/dialogs/{dialog_id}/messages", headers=alice.headers)
    assert r.status_code == 200 and len(r.json()["items"]) == 16
    r = await client.get("/api/balance", headers=alice.headers)
    assert r.status_code == 200, r.text
    assert pgbouncer.transactions() > before + 16, "the turns' transactions went through PgBouncer"
