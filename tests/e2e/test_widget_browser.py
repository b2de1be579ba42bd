"""The widget in headless Chromium (Debian's package, driven by Playwright) against the real stack.

A host page on another local origin embeds ``/widget.js``; the visitor chats through the launcher, the
reply streams in, survives a cut WebSocket without lost or repeated text, and falls back to polling when
sockets are blocked. Pages of an origin the owner did not list are refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.async_api import Browser, Locator, Page, WebSocketRoute, expect

from tests.fixtures.api import Account, signup
from tests.fixtures.stack import FakeLLM, Stack

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "widget.png"
TIMEOUT_MS = 30_000
QUESTION = "Do you ship to Norway?"


async def shop_assistant(http: httpx.AsyncClient, owner: Account, origin: str) -> dict[str, Any]:
    r = await http.post("/api/assistants", json={"name": "Shop helper"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    r = await http.patch(
        f"/api/assistants/{r.json()['id']}", json={"widget_allowed_origins": [origin]}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    return r.json()


def host_page(site: tuple[Path, int], name: str, api: str, public_key: str, extra: str = "") -> str:
    root, port = site
    (root / name).write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Shop</title>"
        "<style>body{font-family:serif;background:#fafaf5} div{color:red !important}</style></head>"
        "<body><h1>The shop</h1><p>Products, prices, and a chat in the corner.</p>"
        f"<script src='{api}/widget.js' data-public-key='{public_key}' data-title='Shop help' "
        "data-greeting='Hi! Ask me anything about the shop.' data-color='#0f766e'></script>"
        f"{extra}</body></html>"
    )
    return f"http://127.0.0.1:{port}/{name}"


async def completed_reply(http: httpx.AsyncClient, owner: Account, assistant_id: str) -> dict[str, Any]:
    """The newest completed reply of the assistant's only widget dialog, as the server stored it."""
    r = await http.get("/api/dialogs", params={"assistant_id": assistant_id}, headers=owner.headers)
    (dialog,) = r.json()["items"]
    assert dialog["via_widget"]
    r = await http.get(f"/api/dialogs/{dialog['id']}/messages", headers=owner.headers)
    replies = [m for m in r.json()["items"] if m["role"] == "assistant"]
    assert replies and replies[-1]["status"] == "completed", replies
    return replies[-1]


async def shows_the_stored_reply(
    bubble: Locator, http: httpx.AsyncClient, owner: Account, assistant_id: str
) -> None:
    """The reply bubble, once finished, holds exactly the text the server stored."""
    await expect(bubble).not_to_have_class(re.compile(r"\btyping\b"), timeout=TIMEOUT_MS)
    stored = await completed_reply(http, owner, assistant_id)
    await expect(bubble).to_have_text(stored["content"])


async def open_and_send(page: Page, text: str) -> None:
    launcher = page.get_by_role("button", name="Open chat")
    await launcher.click()
    box = page.get_by_role("textbox", name="Message")
    await expect(box).to_be_focused(timeout=TIMEOUT_MS)
    await box.fill(text)
    await box.press("Enter")


async def test_chat_streams_and_survives_a_cut_socket(
    client: httpx.AsyncClient,
    stack: Stack,
    fake_llm: FakeLLM,
    browser: Browser,
    host_site: tuple[Path, int],
) -> None:
    origin = f"http://127.0.0.1:{host_site[1]}"
    owner = await signup(client, "shopkeeper")
    assistant = await shop_assistant(client, owner, origin)
    url = host_page(host_site, "index.html", stack.base_url, assistant["public_key"])

    page = await browser.new_page(viewport={"width": 1000, "height": 700})
    sockets: list[WebSocketRoute] = []
    subscribes: list[str] = []

    def proxy(ws: WebSocketRoute) -> None:
        # Pass frames through to the real gateway, keeping each connection so the test can cut it.
        server = ws.connect_to_server()

        def to_server(message: str | bytes) -> None:
            if isinstance(message, str) and '"subscribe"' in message:
                subscribes.append(message)
            server.send(message)

        ws.on_message(to_server)
        sockets.append(ws)

    await page.route_web_socket(re.compile(r".*/api/ws.*"), proxy)
    await page.goto(url)
    await expect(page.get_by_role("button", name="Open chat")).to_be_visible(timeout=TIMEOUT_MS)
    # A reply slow enough (about 3 s) to cut its stream halfway.
    fake_llm.configure(tokens=50, token_delay_ms=60)
    try:
        await open_and_send(page, QUESTION)
        await expect(page.locator(".msg.user")).to_have_text([QUESTION], timeout=TIMEOUT_MS)
        await cut_mid_reply_and_check(page, client, owner, assistant, sockets, subscribes)
        # Every socket, the first and those reopened, carries its token in the first frame, not the URL.
        assert all(not urlsplit(ws.url).query for ws in sockets), [ws.url for ws in sockets]
    finally:
        fake_llm.configure(tokens=50, token_delay_ms=0)


async def cut_mid_reply_and_check(
    page: Page,
    client: httpx.AsyncClient,
    owner: Account,
    assistant: dict[str, Any],
    sockets: list[WebSocketRoute],
    subscribes: list[str],
) -> None:
    bubble = page.locator(".msg[data-reply-id]").last
    await expect(bubble).to_have_class(re.compile(r"\btyping\b"), timeout=TIMEOUT_MS)
    await expect(bubble).to_have_text(re.compile(r"\w+"), timeout=TIMEOUT_MS)  # the stream has begun
    partial = await bubble.text_content() or ""
    assert len(sockets) == 1
    await sockets[0].close(code=4000, reason="network cut")  # the page sees its socket drop mid-reply

    await expect(bubble).not_to_have_class(re.compile(r"\btyping\b"), timeout=TIMEOUT_MS)
    stored = await completed_reply(client, owner, assistant["id"])
    assert await bubble.text_content() == stored["content"], "nothing lost, nothing repeated"
    assert len(partial) < len(stored["content"]), "the socket was cut before the reply ended"
    assert len(sockets) >= 2 and len(subscribes) >= 2
    resumed = re.search(r'"last_event_id":"([0-9-]+)"', subscribes[-1])
    assert resumed is not None and resumed.group(1) != "0", subscribes[-1]

    # Accessible: replies land in a live log, and Escape closes the panel with focus back on the launcher.
    await expect(page.get_by_role("log")).to_have_attribute("aria-live", "polite")
    await page.screenshot(path=str(SCREENSHOT))
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("button", name="Open chat")).to_be_focused(timeout=TIMEOUT_MS)
    # Host styles stay out of the shadow root.
    color = await bubble.evaluate("el => getComputedStyle(el).color")
    assert color != "rgb(255, 0, 0)"

    # A returning visitor (same browser storage) continues the same dialog.
    await page.reload()
    await page.get_by_role("button", name="Open chat").click()
    await expect(page.locator(".msg.user")).to_have_text([QUESTION])
    await expect(page.locator(".msg[data-reply-id]").last).to_have_text(stored["content"])
    await page.close()


async def test_polling_takes_over_when_sockets_are_blocked(
    client: httpx.AsyncClient, stack: Stack, browser: Browser, host_site: tuple[Path, int]
) -> None:
    origin = f"http://127.0.0.1:{host_site[1]}"
    owner = await signup(client, "blocked")
    assistant = await shop_assistant(client, owner, origin)
    url = host_page(host_site, "blocked.html", stack.base_url, assistant["public_key"])
    page = await browser.new_page()
    attempts: list[str] = []

    async def refuse(ws: WebSocketRoute) -> None:
        attempts.append(ws.url)
        await ws.close(code=4003, reason="blocked by a proxy")

    await page.route_web_socket(re.compile(r".*/api/ws.*"), refuse)
    await page.goto(url)
    await open_and_send(page, "are you there [[tokens:12]]")
    await shows_the_stored_reply(page.locator(".msg[data-reply-id]").last, client, owner, assistant["id"])
    assert len(attempts) >= 3
    await page.close()


async def test_a_page_of_an_unlisted_origin_is_refused(
    client: httpx.AsyncClient, stack: Stack, browser: Browser, host_site: tuple[Path, int]
) -> None:
    owner = await signup(client, "elsewhere")
    assistant = await shop_assistant(client, owner, f"http://127.0.0.1:{host_site[1]}")
    host_page(host_site, "other.html", stack.base_url, assistant["public_key"])
    page = await browser.new_page()
    await page.goto(f"http://localhost:{host_site[1]}/other.html")  # same files, another origin
    await page.get_by_role("button", name="Open chat").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "This chat is not available on this site.", timeout=TIMEOUT_MS
    )
    r = await client.get("/api/dialogs", params={"assistant_id": assistant["id"]}, headers=owner.headers)
    assert r.json()["items"] == [], "no session, no dialog"
    await page.close()


async def test_the_iframe_page_chats_inside_a_listed_host(
    client: httpx.AsyncClient, stack: Stack, browser: Browser, host_site: tuple[Path, int]
) -> None:
    owner = await signup(client, "framed")
    assistant = await shop_assistant(client, owner, f"http://127.0.0.1:{host_site[1]}")
    greeting = {"greeting": "Welcome! Ask about sizes, orders and returns."}
    r = await client.patch(f"/api/assistants/{assistant['id']}", json=greeting, headers=owner.headers)
    assert r.status_code == 200, r.text
    frame_src = f"{stack.base_url}/widget/{assistant['public_key']}?title=Framed"
    root, port = host_site
    (root / "framed.html").write_text(
        f"<!doctype html><title>Framed</title><iframe src='{frame_src}' width='400' height='500'></iframe>"
    )
    page = await browser.new_page()
    opened: list[str] = []
    page.on("websocket", lambda ws: opened.append(ws.url))
    await page.goto(f"http://127.0.0.1:{port}/framed.html")
    frame = page.frame_locator("iframe")
    # The page sets no greeting of its own: a new visitor is greeted with the assistant's.
    await expect(frame.locator(".msg").first).to_have_text(greeting["greeting"], timeout=TIMEOUT_MS)
    box = frame.get_by_role("textbox", name="Message")
    await box.fill("inside a frame [[tokens:8]]")
    await box.press("Enter")
    await shows_the_stored_reply(frame.locator(".msg[data-reply-id]").last, client, owner, assistant["id"])
    # No token in the socket's URL, where access logs would keep it: it goes in the first frame.
    assert opened, "the widget opened its socket"
    assert all(urlsplit(url).path == "/api/ws" and not urlsplit(url).query for url in opened), opened
    await page.close()


MARKDOWN_REPLY = (
    "Here is how:\n\n"
    "```python\nprint('<b>hi</b>')\n```\n\n"
    "- first *step*\n- then **`make run`**\n\n"
    "Read [the docs](https://docs.example.com/start) or [this](javascript:window.__pwned=1).\n"
    "<script>window.__pwned=1</script> <img src=x onerror=window.__pwned=1>"
)


async def test_replies_render_as_sanitized_markdown_while_streaming(
    client: httpx.AsyncClient, stack: Stack, browser: Browser, host_site: tuple[Path, int]
) -> None:
    owner = await signup(client, "markdown")
    assistant = await shop_assistant(client, owner, f"http://127.0.0.1:{host_site[1]}")
    url = host_page(host_site, "markdown.html", stack.base_url, assistant["public_key"])
    page = await browser.new_page()
    await page.goto(url)
    # The fake model answers with the message itself, one word every 150 ms.
    await open_and_send(page, f"[[verbatim:1]][[delay_ms:150]]{MARKDOWN_REPLY}")
    bubble = page.locator(".msg[data-reply-id]").last

    # Rendered as it streams: the first paragraph is formatted while the link has not arrived yet.
    await expect(bubble.locator("p").first).to_have_text("Here is how:", timeout=TIMEOUT_MS)
    assert "typing" in (await bubble.get_attribute("class") or "")
    assert await bubble.locator("a").count() == 0

    await expect(bubble).not_to_have_class(re.compile(r"\btyping\b"), timeout=TIMEOUT_MS)
    await expect(bubble.locator("pre > code")).to_have_text("print('<b>hi</b>')")
    await expect(bubble.locator("ul > li")).to_have_text(["first step", "then make run"])
    await expect(bubble.locator("li em")).to_have_text("step")
    await expect(bubble.locator("li strong > code")).to_have_text("make run")
    link = bubble.locator("a")
    await expect(link).to_have_count(1)  # the javascript: link is left as its label, unlinked
    await expect(link).to_have_text("the docs")
    assert await link.get_attribute("href") == "https://docs.example.com/start"
    assert await link.get_attribute("target") == "_blank"
    assert "noopener" in (await link.get_attribute("rel") or "").split()

    # Markup in a reply is text: no element was made from it and nothing ran.
    assert await bubble.locator("script, img, b").count() == 0
    await expect(bubble.locator("p").last).to_contain_text("<script>window.__pwned=1</script>")
    await expect(bubble.locator("p").last).to_contain_text("or this.")
    assert await page.evaluate("window.__pwned") is None
    await page.close()
