"""A terminal conversation with an assistant through the public API (docs/api.md): HTTP in, WebSocket out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

# demo@chatai.local would be rejected by email validation (".local" is a special-use domain).
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "chatai-demo-password"
DEMO_ASSISTANT = "Demo assistant"
DEMO_SYSTEM_PROMPT = "You are a friendly assistant. Answer briefly, and say so when you do not know."
TERMINAL_STATUSES = {"completed", "failed", "cancelled"}
# Close codes with which a WebSocket server may refuse a token after accepting the connection.
AUTH_CLOSE_CODES = {1008, 4001, 4401, 4403}


class ChatError(Exception):
    """Something the person at the terminal should read; the message says what happened."""


class ApiError(ChatError):
    def __init__(
        self, status: int, code: str, message: str, details: Any = None, retry_after: str | None = None
    ):
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.message} ({self.code}, HTTP {self.status})"
        if self.retry_after:
            text += f"; retry after {self.retry_after}s"
        if self.details:
            text += "\n" + _format_details(self.details)
        return text


class ReplyFailed(ChatError):
    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(f"the reply failed: {message} ({code})")


class ReplyCancelled(ChatError):
    def __init__(self, content: str):
        self.content = content
        super().__init__("the reply was cancelled")


class ReplyMismatch(ChatError):
    """The streamed deltas do not add up to the completed reply (events were lost on the way)."""

    def __init__(self, streamed: str, content: str):
        self.streamed = streamed
        self.content = content
        super().__init__(f"streamed {len(streamed)} characters, but the reply has {len(content)}")


def _format_details(details: Any) -> str:
    if isinstance(details, list):
        lines = []
        for item in details:
            if isinstance(item, dict) and "msg" in item:
                where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
                lines.append(f"  - {where or 'request'}: {item['msg']}")
            else:
                lines.append(f"  - {item}")
        return "\n".join(lines)
    return f"  {json.dumps(details, default=str)}"


def api_error(response: httpx.Response) -> ApiError:
    """The API's ``{"error": {"code", "message", "details"}}`` body, or what there is of it."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    retry_after = response.headers.get("Retry-After")
    if isinstance(error, dict):
        return ApiError(
            response.status_code,
            str(error.get("code", "error")),
            str(error.get("message", response.reason_phrase)),
            error.get("details"),
            retry_after,
        )
    text = response.text.strip()[:300] or response.reason_phrase
    return ApiError(response.status_code, "http_error", text, retry_after=retry_after)


def default_api_url() -> str:
    host = os.environ.get("CHATAI_HOST", "127.0.0.1")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{os.environ.get('CHATAI_PORT', '8000')}"


def _decode(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


@dataclass
class _Broken:
    """Put on the event queue when the WebSocket is gone for good."""

    error: ChatError


class ChatClient:
    """One user's conversation: log in, pick an assistant, open a dialog, ask and stream the answers.

    Events are read by a background task from the moment the dialog topic is subscribed, so a reply
    that starts before ``POST /messages`` returns is not missed; a dropped socket is reopened and
    resubscribed from the last event seen, and events are deduplicated by id.
    """

    def __init__(
        self,
        api_url: str | None = None,
        email: str = DEMO_EMAIL,
        password: str = DEMO_PASSWORD,
        assistant_name: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        reply_timeout: float = 120.0,
        poll_after: float = 10.0,
    ):
        self.api_url = (api_url or default_api_url()).rstrip("/")
        self.email = email
        self.password = password
        self.assistant_name = assistant_name
        self.reply_timeout = reply_timeout
        self.poll_after = poll_after
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.assistant: dict[str, Any] | None = None
        self.dialog: dict[str, Any] | None = None
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(base_url=self.api_url, timeout=30.0)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[dict[str, Any] | _Broken] = asyncio.Queue()
        self._seen: set[str] = set()
        self._last_event_id: str | None = None

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._disconnect()
        if self._owns_http:
            await self._http.aclose()

    async def _disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            # Closing: whatever ended the reader no longer matters.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self._events = asyncio.Queue()
        self._seen.clear()
        self._last_event_id = None

    # HTTP

    async def _send(
        self, method: str, path: str, json_body: Any, headers: dict[str, str], auth: bool
    ) -> httpx.Response:
        if auth and self.access_token:
            headers = {**headers, "Authorization": f"Bearer {self.access_token}"}
        try:
            return await self._http.request(method, path, json=json_body, headers=headers)
        except httpx.TransportError as exc:
            raise ChatError(
                f"cannot reach the API at {self.api_url} ({exc.__class__.__name__}: {exc}); "
                "is it running? (make run)"
            ) from exc

    async def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Any:
        """One API call; an expired access token is refreshed once and the call repeated."""
        headers = headers or {}
        response = await self._send(method, path, json_body, headers, auth)
        expired = response.status_code == 401 and api_error(response).code == "token_expired"
        if expired and auth and self.refresh_token:
            await self.refresh()
            response = await self._send(method, path, json_body, headers, auth)
        if response.is_error:
            raise api_error(response)
        return response.json() if response.content else None

    # Auth

    async def login(self) -> None:
        tokens = await self.request(
            "POST", "/api/auth/login", {"email": self.email, "password": self.password}, auth=False
        )
        self._take_tokens(tokens)

    async def register(self) -> dict[str, Any]:
        body = {"email": self.email, "password": self.password, "name": "Demo user"}
        return await self.request("POST", "/api/auth/register", body, auth=False)

    async def login_or_register(self) -> None:
        try:
            await self.login()
            return
        except ApiError as exc:
            if exc.status != 401:
                raise
        try:
            await self.register()
        except ApiError as exc:
            if exc.code == "email_taken":
                raise ChatError(
                    f"{self.email} exists but the password does not match; pass --email and --password"
                ) from exc
            raise
        await self.login()

    async def refresh(self) -> None:
        if not self.refresh_token:
            raise ChatError("the session expired; log in again")
        try:
            tokens = await self.request(
                "POST", "/api/auth/refresh", {"refresh_token": self.refresh_token}, auth=False
            )
        except ApiError as exc:
            if exc.status != 401:
                raise
            # The refresh token is spent or revoked: a fresh login is the only way on.
            self.refresh_token = None
            await self.login()
            return
        self._take_tokens(tokens)

    def _take_tokens(self, tokens: dict[str, Any]) -> None:
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens.get("refresh_token")

    # Resources

    async def _assistants(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = await self.request("GET", f"/api/assistants?{urlencode(query)}")
            items.extend(page.get("items", []))
            cursor = page.get("next_cursor")
            # The first page is enough when any assistant will do.
            if not cursor or (self.assistant_name is None and items):
                return items

    async def ensure_assistant(self) -> dict[str, Any]:
        """The assistant named ``assistant_name`` (created if missing), else the first one, else a demo."""
        assistants = await self._assistants()
        if self.assistant_name is not None:
            found = [a for a in assistants if a.get("name") == self.assistant_name]
        else:
            found = assistants[:1]
        if found:
            self.assistant = found[0]
        else:
            body = {"name": self.assistant_name or DEMO_ASSISTANT, "system_prompt": DEMO_SYSTEM_PROMPT}
            self.assistant = await self.request("POST", "/api/assistants", body)
        return self.assistant

    async def create_dialog(self, title: str = "Terminal chat") -> dict[str, Any]:
        if self.assistant is None:
            await self.ensure_assistant()
        assert self.assistant is not None
        # The socket follows one dialog's topic; a new dialog starts a new subscription.
        await self._disconnect()
        self.dialog = await self.request(
            "POST", "/api/dialogs", {"assistant_id": self.assistant["id"], "title": title}
        )
        return self.dialog

    async def send_message(self, text: str) -> str:
        """Post a user message; returns the id of the assistant reply it started."""
        if self.dialog is None:
            raise ChatError("no dialog yet: call create_dialog() first")
        answer = await self.request(
            "POST",
            f"/api/dialogs/{self.dialog['id']}/messages",
            {"content": text},
            # The key makes a repeated post (after a token refresh) the same message, not a second one.
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        return str(answer["reply"]["id"])

    # WebSocket

    @property
    def topic(self) -> str:
        if self.dialog is None:
            raise ChatError("no dialog yet: call create_dialog() first")
        return f"dialog:{self.dialog['id']}"

    def _ws_url(self) -> str:
        parts = urlsplit(self.api_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/api/ws"
        return urlunsplit((scheme, parts.netloc, path, "", ""))

    async def connect(self) -> None:
        """Open the WebSocket, subscribe to the dialog and start reading events (once)."""
        if self._reader is not None and not self._reader.done():
            return
        self._ws = await self._open_ws()
        self._reader = asyncio.create_task(self._read_events(), name="chat-events")

    async def _open_ws(self) -> ClientConnection:
        for attempt in (1, 2):
            try:
                ws = await connect(self._ws_url(), open_timeout=10, close_timeout=2)
            except InvalidStatus as exc:
                if exc.response.status_code == 401 and attempt == 1:
                    await self.refresh()
                    continue
                raise ChatError(f"the WebSocket was refused: HTTP {exc.response.status_code}") from exc
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                raise ChatError(f"cannot open the WebSocket at {self.api_url}/api/ws: {exc}") from exc
            try:
                # The token goes in the first frame, not the URL, which proxies write to their logs.
                await ws.send(json.dumps({"type": "auth", "token": self.access_token or ""}))
                await self._subscribe(ws)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                if code in AUTH_CLOSE_CODES and attempt == 1:
                    await self.refresh()
                    continue
                reason = exc.rcvd.reason if exc.rcvd else ""
                raise ChatError(f"the WebSocket closed while subscribing (code {code} {reason})") from exc
            return ws
        raise ChatError("the WebSocket refused the token even after refreshing it")

    async def _subscribe(self, ws: ClientConnection) -> None:
        # "0" on first subscribe replays anything the new dialog already has; later, from the last event.
        frame = {"type": "subscribe", "topic": self.topic, "last_event_id": self._last_event_id or "0"}
        await ws.send(json.dumps(frame))
        while True:
            message = _decode(await asyncio.wait_for(ws.recv(), timeout=10))
            kind = message.get("type")
            if kind == "subscribed" and message.get("topic") == self.topic:
                return
            if kind == "error":
                await ws.close()
                raise ChatError(f"cannot subscribe to {self.topic}: {message.get('code')}")
            self._accept(message)

    def _accept(self, message: dict[str, Any]) -> None:
        event_id = message.get("id")
        if event_id is None or message.get("topic") != self.topic:
            return
        event_id = str(event_id)
        if event_id in self._seen:
            return
        self._seen.add(event_id)
        self._last_event_id = event_id
        self._events.put_nowait(message)

    async def _read_events(self) -> None:
        while True:
            assert self._ws is not None
            try:
                async for raw in self._ws:
                    self._accept(_decode(raw))
            except ConnectionClosed:
                pass
            # The server went away (restart, network): reopen and replay from the last event seen.
            error: ChatError | None = None
            for delay in (0.2, 0.5, 1.0, 2.0, 4.0, 8.0):
                await asyncio.sleep(delay)
                try:
                    self._ws = await self._open_ws()
                    error = None
                    break
                except (ChatError, ConnectionClosed, TimeoutError) as exc:
                    error = exc if isinstance(exc, ChatError) else ChatError(str(exc))
            if error is not None:
                self._events.put_nowait(_Broken(ChatError(f"lost the WebSocket: {error}")))
                return

    # Asking

    async def ask(self, text: str, on_delta: Callable[[str], None] | None = None) -> str:
        """Post ``text`` and return the reply, gathered from its ``reply.delta`` events.

        Raises ReplyFailed, ReplyCancelled, or ReplyMismatch when the deltas do not add up to
        ``reply.completed.content``.
        """
        await self.connect()
        reply_id = await self.send_message(text)
        return await self.wait_reply(reply_id, on_delta)

    async def wait_reply(self, reply_id: str, on_delta: Callable[[str], None] | None = None) -> str:
        """Gather one reply's deltas (subscribed beforehand by ``connect``) until it ends; see ``ask``."""
        parts: list[str] = []
        last_heard = time.monotonic()
        while True:
            try:
                event = await asyncio.wait_for(self._events.get(), timeout=self.poll_after)
            except TimeoutError:
                # A quiet socket: the polling path tells whether the reply ended without us hearing.
                done = await self._poll(reply_id, parts, on_delta)
                if done is not None:
                    return done
                if time.monotonic() - last_heard > self.reply_timeout:
                    raise ChatError(
                        f"no reply after {self.reply_timeout:.0f}s; are the workers running? (make run)"
                    ) from None
                continue
            if isinstance(event, _Broken):
                raise event.error
            data = event.get("data") or {}
            if str(data.get("reply_id")) != reply_id:
                continue
            last_heard = time.monotonic()
            kind = event.get("type")
            if kind == "reply.delta":
                delta = str(data.get("text", ""))
                if data.get("reset"):
                    # A regenerated reply that differs from what was shown replaces it.
                    parts.clear()
                    if on_delta is not None:
                        on_delta("\n[regenerated] ")
                parts.append(delta)
                if on_delta is not None:
                    on_delta(delta)
            elif kind == "reply.completed":
                content = str(data.get("content", ""))
                streamed = "".join(parts)
                if streamed != content:
                    raise ReplyMismatch(streamed, content)
                return content
            elif kind == "reply.failed":
                error = data.get("error") or {}
                raise ReplyFailed(str(error.get("code", "failed")), str(error.get("message", "")))
            elif kind == "reply.cancelled":
                raise ReplyCancelled(str(data.get("content", "")))

    async def _poll(
        self, reply_id: str, parts: list[str], on_delta: Callable[[str], None] | None
    ) -> str | None:
        reply = await self.request("GET", f"/api/messages/{reply_id}")
        status = reply.get("status")
        if status not in TERMINAL_STATUSES:
            return None
        content = str(reply.get("content") or "")
        if status == "failed":
            error = reply.get("error")
            if isinstance(error, dict):
                raise ReplyFailed(str(error.get("code", "failed")), str(error.get("message", "")))
            raise ReplyFailed("failed", str(error or ""))
        if status == "cancelled":
            raise ReplyCancelled(content)
        streamed = "".join(parts)
        if not content.startswith(streamed):
            raise ReplyMismatch(streamed, content)
        if on_delta is not None and len(content) > len(streamed):
            on_delta(content[len(streamed) :])
        return content


class _LineReader:
    """``input()`` in a daemon thread, so a pending prompt never keeps the process (or Ctrl-C) waiting."""

    def __init__(self, prompt: str):
        self._prompt = prompt
        self._loop = asyncio.get_running_loop()
        self._wanted: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=self._run, name="stdin", daemon=True).start()

    def _run(self) -> None:
        while True:
            self._wanted.get()
            try:
                line: str | None = input(self._prompt)
            except EOFError:
                line = None
            try:
                self._loop.call_soon_threadsafe(self._lines.put_nowait, line)
            except RuntimeError:  # the loop is closed: the session is over
                return
            if line is None:
                return

    async def read(self) -> str | None:
        self._wanted.put(None)
        return await self._lines.get()


async def interactive(client: ChatClient, out: TextIO = sys.stdout) -> None:
    """The terminal session: set up, then one line in, one streamed reply out, until Ctrl-D."""

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    await client.login_or_register()
    assistant = await client.ensure_assistant()
    dialog = await client.create_dialog()
    await client.connect()
    write(
        f"Logged in as {client.email}; talking to {assistant.get('name')!r} in dialog {dialog['id']}.\n"
        "Type a message and press Enter; Ctrl-D or Ctrl-C leaves.\n"
    )
    lines = _LineReader("you> ")
    while True:
        line = await lines.read()
        if line is None:
            write("\n")
            return
        text = line.strip()
        if not text:
            continue
        try:
            reply_id = await client.send_message(text)
        except ApiError as exc:
            write(f"[error] {exc}\n")
            continue
        streamed = False

        def show(delta: str) -> None:
            nonlocal streamed
            streamed = True
            write(delta)

        write("assistant> ")
        # Each turn ends on a fresh line: after the streamed text, or right after the prefix.
        try:
            await client.wait_reply(reply_id, on_delta=show)
            write("\n")
        except ReplyFailed as exc:
            write(("\n" if streamed else "") + f"[reply failed: {exc.code}: {exc.message}]\n")
        except ReplyCancelled:
            write(("\n" if streamed else "") + "[reply cancelled]\n")
        except ReplyMismatch as exc:
            write(f"\n[part of the stream was lost; the whole reply:]\n{exc.content}\n")
        except ApiError as exc:
            write(("\n" if streamed else "") + f"[error] {exc}\n")
