"""RabbitMQ as the broker and Redis gone: once the message is committed and its task is with the broker,
the request has been accepted (202), even though its events cannot be published; the reply is then
generated (by the reaper's retry if Redis's absence broke the first attempt), and replay and polling
catch the client up."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.api import new_dialog, poll_reply, signup
from tests.fixtures.redis_server import RedisServer, stack_on_own_redis
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="RabbitMQ is not installed")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of this module's own: no other run's queues, nothing left behind."""
    name = f"chatai-test-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="module")
def stack(vhost: str, redis_server: RedisServer, database_url: str, log_dir: Path) -> Iterator[Stack]:
    # Beat's reaper takes back a reply whose generation Redis's absence broke after it was claimed.
    with stack_on_own_redis(
        redis_server, database_url, log_dir, beat=True,
        CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        # Generation slots live in Redis: with them, nothing could be accepted while Redis is away.
        CHATAI_RATE_LIMITS_ENABLED="false", CHATAI_BILLING_ENABLED="true",
    ) as system:  # fmt: skip
        yield system


async def test_a_message_the_broker_took_is_accepted_while_redis_is_down(
    http: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    user = await signup(http, "amqp")
    _, dialog_id = await new_dialog(http, user)
    redis_server.stop()
    try:
        r = await http.post(
            f"/api/dialogs/{dialog_id}/messages", json={"content": "still there?"}, headers=user.headers
        )
        assert r.status_code == 202, r.text
        reply_id = r.json()["reply"]["id"]
        listed = await http.get(f"/api/dialogs/{dialog_id}/messages", headers=user.headers)
        assert [m["content"] for m in listed.json()["items"]][:1] == ["still there?"]
    finally:
        redis_server.start()
    done = await poll_reply(http, user, reply_id, timeout=90)
    assert done["status"] == "completed" and done["content"], done
