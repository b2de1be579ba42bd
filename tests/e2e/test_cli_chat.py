"""``chatai chat``: a newcomer's first conversation, streamed over the WebSocket from the real stack."""

from __future__ import annotations

import uuid

from cli.chat import ChatClient
from tests.fixtures.stack import Stack


async def test_chat_client_registers_creates_an_assistant_and_streams_replies(stack: Stack) -> None:
    email = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"
    streamed: list[str] = []
    async with ChatClient(stack.base_url, email=email, password="newcomer password") as chat:
        await chat.login_or_register()
        assistant = await chat.ensure_assistant()
        await chat.create_dialog()
        first = await chat.ask("hello from the terminal [[tokens:20]]", on_delta=streamed.append)
        second = await chat.ask("and again [[tokens:7]]")
    assert assistant["name"]
    assert first.startswith("Echo: hello from the terminal") and len(first.split()) == 20
    assert "".join(streamed) == first and len(streamed) >= 1
    assert len(second.split()) == 7

    # Running it again logs the same user in and reuses the assistant.
    async with ChatClient(stack.base_url, email=email, password="newcomer password") as chat:
        await chat.login_or_register()
        assert (await chat.ensure_assistant())["id"] == assistant["id"]
