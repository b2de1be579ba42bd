"""Retention through a real analytics worker driven by beat: idle dialogs older than the setting go,
recent ones and the current dialog of a Telegram chat stay; with the setting unset nothing is scheduled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.queues import TASKS
from core.settings import Settings
from scheduler.jobs import maintenance_schedule
from tests.fixtures.database import sql
from tests.fixtures.processes import eventually
from tests.fixtures.rows import insert_assistant
from tests.fixtures.stack import TEST_JWT_SECRET, Stack

DAYS = 30


@pytest.fixture(scope="module")
def retention_stack(stack_env: dict[str, str], log_dir: Any) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_DIALOG_RETENTION_DAYS": str(DAYS),
        "CHATAI_RETENTION_INTERVAL_SECONDS": "1",
        "CHATAI_ANALYTICS_ENABLED": "false",
        "CHATAI_CANARY_ENABLED": "false",
    }
    system = Stack(env, log_dir)
    yield system
    system.stop()


def test_retention_is_off_by_default() -> None:
    settings = Settings(env="test", jwt_secret=TEST_JWT_SECRET)
    assert settings.dialog_retention_days is None
    tasks = {job["task"] for job in maintenance_schedule(settings).values()}
    assert TASKS.retention_cleanup not in tasks
    on = Settings(env="test", jwt_secret=TEST_JWT_SECRET, dialog_retention_days=DAYS)
    assert TASKS.retention_cleanup in {job["task"] for job in maintenance_schedule(on).values()}


def dialog(database_url: str, owner: str, assistant: str, created: datetime, *messages: datetime) -> str:
    dialog_id = str(uuid.uuid4())
    sql(
        database_url,
        "INSERT INTO dialogs (id, owner_id, assistant_id, status, created_at, updated_at)"
        " VALUES (%s, %s, %s, 'active', %s, %s)",
        dialog_id, owner, assistant, created, created,
    )  # fmt: skip
    for at in messages:
        sql(
            database_url,
            "INSERT INTO messages (id, owner_id, dialog_id, role, content, status, attempt, created_at)"
            " VALUES (gen_random_uuid(), %s, %s, 'user', 'hi', 'completed', 1, %s)",
            owner, dialog_id, at,
        )  # fmt: skip
    return dialog_id


def test_idle_dialogs_older_than_the_setting_are_deleted(retention_stack: Stack, database_url: str) -> None:
    (owner,), *_ = sql(
        database_url,
        "INSERT INTO users (id, email, password_hash, role, is_active) VALUES"
        " (gen_random_uuid(), %s, 'x', 'user', true) RETURNING id::text",
        f"ret-{uuid.uuid4().hex[:8]}@example.com",
    )
    assistant = insert_assistant(database_url, owner)
    now = datetime.now(UTC)
    old = now - timedelta(days=DAYS + 5)
    idle = [dialog(database_url, owner, assistant, old, old + timedelta(hours=h)) for h in range(3)]
    empty = dialog(database_url, owner, assistant, old)
    revived = dialog(database_url, owner, assistant, old, old, now - timedelta(days=1))
    recent = dialog(database_url, owner, assistant, now - timedelta(days=2), now - timedelta(days=2))
    telegram_current = dialog(database_url, owner, assistant, old, old)
    (bot,), *_ = sql(
        database_url,
        "INSERT INTO telegram_bots (id, owner_id, assistant_id, telegram_id, username, token_encrypted,"
        " webhook_secret, status, pending_update_count, updated_at) VALUES (gen_random_uuid(), %s, %s,"
        " (random() * 1e12)::bigint, 'b', '\\x00', 's', 'active', 0, now()) RETURNING id::text",
        owner, assistant,
    )  # fmt: skip
    sql(
        database_url,
        "INSERT INTO telegram_chats (id, bot_id, owner_id, chat_id, chat_type, dialog_id, active, updated_at)"
        " VALUES (gen_random_uuid(), %s, %s, 42, 'private', %s, true, now())",
        bot, owner, telegram_current,
    )  # fmt: skip

    retention_stack.start_worker("analytics")
    retention_stack.start_beat()

    def remaining() -> set[str]:
        return {str(r[0]) for r in sql(database_url, "SELECT id FROM dialogs WHERE owner_id = %s", owner)}

    eventually(lambda: not (remaining() & {*idle, empty}), 60, "the idle dialogs to be deleted")
    assert remaining() == {revived, recent, telegram_current}
    (left,), *_ = sql(
        database_url, "SELECT count(*) FROM messages WHERE dialog_id = ANY(%s::uuid[])", [*idle, empty]
    )
    assert left == 0
