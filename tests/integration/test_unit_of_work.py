"""The one unit of work, against the real Postgres and a broker that is not there: what is committed, what
is undone, and what a failure after the commit may not take back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from core import outbox, secretbox, taskqueue
from core.db import reset_engines
from core.queues import TASKS
from core.redis import reset_clients
from core.settings import get_settings
from core.unit_of_work import DispatchFailed, unit_of_work
from models import Assistant, Dialog, Message, TelegramBot, User
from services.conversations import messages
from services.telegram import handling
from tests.fixtures.processes import free_port


@pytest.fixture(scope="module")
def dead_broker(database_url: str, stack_redis_url: str) -> Iterator[None]:
    """Settings of this process pointed at the module's database and at a broker nobody listens on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", database_url)
        patch.setenv("REDIS_URL", stack_redis_url)
        patch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
        patch.setenv("CHATAI_BILLING_ENABLED", "false")
        _forget_clients()
        yield
    _forget_clients()


def _forget_clients() -> None:
    get_settings.cache_clear()
    reset_engines()
    reset_clients()
    taskqueue.celery_app.cache_clear()


async def _owner_with_dialog() -> tuple[User, Assistant, Dialog]:
    async with unit_of_work() as session:
        user = User(email=f"{uuid.uuid4().hex}@example.com", password_hash="x")
        session.add(user)
        await session.flush()
        assistant = Assistant(owner_id=user.id, name="a", model="m")
        session.add(assistant)
        await session.flush()
        dialog = Dialog(owner_id=user.id, assistant_id=assistant.id)
        session.add(dialog)
    return user, assistant, dialog


async def _messages_in(dialog_id: uuid.UUID) -> int:
    async with unit_of_work() as session:
        return await session.scalar(select(func.count()).where(Message.dialog_id == dialog_id)) or 0


async def test_a_post_whose_task_cannot_be_sent_is_undone(dead_broker: None) -> None:
    user, _, dialog = await _owner_with_dialog()
    with pytest.raises(DispatchFailed):
        async with unit_of_work() as session:
            owner = await session.get_one(User, user.id)
            await messages.post_message(session, owner, dialog.id, "hello")
    assert await _messages_in(dialog.id) == 0


async def test_a_telegram_update_whose_task_cannot_be_sent_is_undone(dead_broker: None) -> None:
    user, assistant, _ = await _owner_with_dialog()
    async with unit_of_work() as session:
        bot = TelegramBot(
            owner_id=user.id, assistant_id=assistant.id, telegram_id=1, username="b",
            token_encrypted=secretbox.encrypt("1:token"), webhook_secret="s",
        )  # fmt: skip
        session.add(bot)
    update = {
        "update_id": 7,
        "message": {
            "message_id": 1, "date": 0, "text": "hello",
            "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": False, "first_name": "A"},
        },
    }  # fmt: skip
    with pytest.raises(DispatchFailed):
        async with unit_of_work() as session:
            assert await handling.handle_update(session, bot.id, update) == "message"
    async with unit_of_work() as session:
        posted = await session.scalar(
            select(func.count()).select_from(Message).join(Dialog).where(Dialog.owner_id == user.id)
        )
    assert posted == 0, "the undo the message registered ran on the worker path too"


async def test_an_action_failing_after_the_commit_does_not_undo_the_work(dead_broker: None) -> None:
    user, assistant, _ = await _owner_with_dialog()

    async def publish_into_the_void() -> None:
        raise ConnectionError("Redis is down")

    async with unit_of_work() as session:
        dialog = Dialog(owner_id=user.id, assistant_id=assistant.id)
        session.add(dialog)
        outbox.after_commit(session, publish_into_the_void)
    async with unit_of_work() as session:
        assert await session.get(Dialog, dialog.id) is not None


async def test_an_error_that_persists_commits_and_sends_nothing(dead_broker: None) -> None:
    user, assistant, _ = await _owner_with_dialog()

    class Recorded(Exception):
        persist = True

    with pytest.raises(Recorded):
        async with unit_of_work() as session:
            dialog = Dialog(owner_id=user.id, assistant_id=assistant.id)
            session.add(dialog)
            outbox.enqueue(session, TASKS.generate_reply, str(uuid.uuid4()), 1)
            await session.flush()
            raise Recorded
    async with unit_of_work() as session:
        assert await session.get(Dialog, dialog.id) is not None
