"""``chatai create-admin``, ``rollup``, ``reconcile`` and ``rotate-bot-tokens`` as subprocesses, on the
database ``DATABASE_URL`` names."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet

from core.security import verify_password
from tests.fixtures.database import sql
from tests.fixtures.processes import ROOT
from tests.fixtures.rows import insert_assistant, user_row

DAY_ROWS = (
    "SELECT period_start, messages, dialogs FROM usage_rollups"
    " WHERE assistant_id = %s AND granularity = 'day'"
)
CHATAI = str(Path(sys.executable).parent / "chatai")


def chatai(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATAI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_create_admin_creates_then_promotes(stack_env: dict[str, str], database_url: str) -> None:
    email = f"root-{uuid.uuid4().hex[:8]}@example.com"
    done = chatai(stack_env, "create-admin", "--email", email, "--password", "a long admin passphrase")
    assert done.returncode == 0, done.stderr
    assert "created admin" in done.stdout
    role, active, password_hash = user_row(database_url, email)
    assert (role, active) == ("admin", True)
    assert verify_password(password_hash, "a long admin passphrase")
    assert sql(database_url, "SELECT 1 FROM audit_events WHERE action = 'admin_created'")

    # An existing user becomes an admin with the new password; a weak password is refused.
    sql(database_url, "UPDATE users SET role = 'user', is_active = false WHERE email = %s", email)
    done = chatai(
        stack_env, "create-admin", "--email", email.upper(), "--password", "another long passphrase"
    )
    assert done.returncode == 0, done.stderr
    assert "promoted admin" in done.stdout
    role, active, password_hash = user_row(database_url, email)
    assert (role, active) == ("admin", True)
    assert verify_password(password_hash, "another long passphrase")
    weak = chatai(stack_env, "create-admin", "--email", "x@example.com", "--password", "short")
    assert weak.returncode == 1
    assert not sql(database_url, "SELECT 1 FROM users WHERE email = 'x@example.com'")


def test_rollup_now(stack_env: dict[str, str], database_url: str) -> None:
    ((owner,),) = sql(database_url, "SELECT id::text FROM users LIMIT 1")
    assistant = insert_assistant(database_url, owner)
    ((dialog,),) = sql(
        database_url,
        "INSERT INTO dialogs (id, owner_id, assistant_id, status, updated_at)"
        " VALUES (gen_random_uuid(), %s, %s, 'active', now()) RETURNING id::text",
        owner, assistant,
    )  # fmt: skip
    for _ in range(3):
        sql(
            database_url,
            "INSERT INTO messages (id, owner_id, dialog_id, role, content, status, attempt)"
            " VALUES (gen_random_uuid(), %s, %s, 'user', 'hi', 'completed', 1)",
            owner, dialog,
        )  # fmt: skip
    done = chatai(stack_env, "rollup", "--period", "day")
    assert done.returncode == 0, done.stderr
    rows = sql(
        database_url,
        DAY_ROWS,
        assistant,
    )
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert [(r[0].astimezone(UTC), r[1], r[2]) for r in rows] == [(today, 3, 1)]
    again = chatai(stack_env, "rollup", "--period", "day", "--days", "3")
    assert again.returncode == 0, again.stderr
    assert (
        sql(
            database_url,
            DAY_ROWS,
            assistant,
        )
        == rows
    )
    assert chatai(stack_env, "rollup", "--period", "week").returncode != 0


def test_reconcile_now_lists_a_corrupted_balance_and_leaves_it(
    stack_env: dict[str, str], database_url: str
) -> None:
    email = f"ledger-{uuid.uuid4().hex[:8]}@example.com"
    assert (
        chatai(
            stack_env, "create-admin", "--email", email, "--password", "a long admin passphrase"
        ).returncode
        == 0
    )
    ((user_id,),) = sql(database_url, "SELECT id::text FROM users WHERE email = %s", email)
    sql(
        database_url,
        "INSERT INTO balances (user_id, balance_micros, held_micros, currency, updated_at)"
        " VALUES (%s, 0, 0, 'USD', now()) ON CONFLICT (user_id) DO NOTHING",
        user_id,
    )
    clean = chatai(stack_env, "reconcile")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 mismatch(es)" in clean.stdout

    balance_sql = "SELECT balance_micros FROM balances WHERE user_id = %s"
    ((before,),) = sql(database_url, balance_sql, user_id)
    sql(database_url, "UPDATE balances SET balance_micros = balance_micros + 777 WHERE user_id = %s", user_id)
    found = chatai(stack_env, "reconcile")
    assert found.returncode == 1, found.stdout + found.stderr
    assert f"mismatch: user {user_id}" in found.stdout and "1 mismatch(es)" in found.stdout
    ((recorded,),) = sql(database_url, "SELECT count(*) FROM balance_mismatches WHERE owner_id = %s", user_id)
    assert recorded == 1
    assert sql(database_url, balance_sql, user_id) == [(before + 777,)]  # reported, not fixed


def test_rotate_bot_tokens_moves_old_derived_key_rows_to_the_configured_key(
    stack_env: dict[str, str], database_url: str
) -> None:
    ((owner,),) = sql(database_url, "SELECT id::text FROM users LIMIT 1")
    assistant = insert_assistant(database_url, owner)
    token = "424242:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ"
    derived = hashlib.sha256(b"chatai-secretbox:" + stack_env["CHATAI_JWT_SECRET"].encode()).digest()
    legacy = Fernet(base64.urlsafe_b64encode(derived)).encrypt(token.encode())
    ((bot_id,),) = sql(
        database_url,
        "INSERT INTO telegram_bots (id, owner_id, assistant_id, telegram_id, username, token_encrypted,"
        " webhook_secret, status, pending_update_count, updated_at) VALUES (gen_random_uuid(), %s, %s,"
        " 424242, 'old_bot', %s, 'x', 'active', 0, now()) RETURNING id::text",
        owner, assistant, legacy,
    )  # fmt: skip
    key = Fernet.generate_key().decode()
    env = {**stack_env, "CHATAI_TELEGRAM_TOKEN_KEYS": key}
    done = chatai(env, "rotate-bot-tokens")
    assert done.returncode == 0, done.stderr
    assert "re-encrypted" in done.stdout
    ((stored,),) = sql(database_url, "SELECT token_encrypted FROM telegram_bots WHERE id = %s", bot_id)
    assert Fernet(key).decrypt(bytes(stored)).decode() == token
