"""The console in headless Chromium (Debian's package, driven by Playwright) against the real stack.

One owner's journey through the static export the API serves at ``/app/``: sign up, create an assistant,
upload a document and watch it index, chat with it and watch the cited answer stream, connect a Telegram
bot (fake Bot API), copy the widget snippet into a page of another origin and chat there, read that chat
in the inbox, top up through Stripe Checkout (fake Stripe) and see analytics; then an admin changes a
price and finds it in the audit log. Each page's first load is measured with the Navigation Timing API
and a screenshot of each page is saved to ``docs/console/``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.fixtures.api import signup
from tests.fixtures.billing import make_admin
from tests.fixtures.fake_stripe import FakeStripe
from tests.fixtures.fake_telegram import FakeTelegram
from tests.fixtures.processes import ARTIFACTS
from tests.fixtures.stack import Stack, running_stack

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
EXPORT = WEB / "out"
SCREENSHOTS = ROOT / "docs" / "console"
TIMEOUT_MS = 30_000
# The first answer with knowledge waits for the workers to load the embedding model.
SLOW_MS = 180_000
FIRST_LOAD_BUDGET_MS = 2_000
SIGNUP_CREDIT = 5_000_000
PASSWORD = "a-long-console-passphrase"
RETURNS = (
    "Returns policy. Customers may return an unused kettle within thirty days and receive their money "
    "back on the original card within five business days."
)
QUESTION = "How many days do I have to return a kettle?"

# Per page, the load time measured on its first navigation (printed at the end of the module).
LOAD_TIMES: dict[str, float] = {}


def _newest_source_mtime() -> float:
    sources = [WEB / "package-lock.json", WEB / "next.config.mjs", WEB / "postcss.config.mjs"]
    sources += [p for p in (WEB / "src").rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in sources)


@pytest.fixture(scope="module")
def console_export() -> Path:
    """The console's static export, built now when it is missing or older than its sources."""
    index = EXPORT / "index.html"
    if index.is_file() and index.stat().st_mtime >= _newest_source_mtime():
        return EXPORT
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("Node.js is not installed (apt-get install -y nodejs npm): cannot build the console")
    env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
    lock = WEB / "node_modules" / ".package-lock.json"
    if not lock.is_file() or lock.stat().st_mtime < (WEB / "package-lock.json").stat().st_mtime:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, env=env, check=True, timeout=900)
    subprocess.run([npm, "run", "build"], cwd=WEB, env=env, check=True, timeout=1200)
    assert index.is_file()
    return EXPORT


@pytest.fixture(scope="module")
def fake_stripe(stack_env: dict[str, str], log_dir: Path) -> Iterator[FakeStripe]:
    server = FakeStripe(log_dir, stack_env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(
    console_export: Path,
    stack_env: dict[str, str],
    fake_telegram: FakeTelegram,
    fake_stripe: FakeStripe,
    log_dir: Path,
) -> Iterator[Stack]:
    env = {
        **stack_env,
        **fake_telegram.env,
        "CHATAI_CONSOLE_DIR": str(console_export),
        # The offline provider answers with the retrieved passages, word by word: a visible stream.
        "CHATAI_LLM_PROVIDER": "offline",
        "CHATAI_OFFLINE_TOKEN_DELAY_MS": "40",
        "CHATAI_SIGNUP_CREDIT_MICROS": str(SIGNUP_CREDIT),
        "CHATAI_STRIPE_API_KEY": fake_stripe.api_key,
        "CHATAI_STRIPE_API_BASE": fake_stripe.base_url,
        "CHATAI_STRIPE_WEBHOOK_SECRET": fake_stripe.webhook_secret,
        "CHATAI_QUERY_EMBEDDING_TIMEOUT_SECONDS": "120",
        "CHATAI_REPLY_SILENCE_SECONDS": "120",
        "CHATAI_DOCUMENT_SILENCE_SECONDS": "60",
        "HF_HUB_OFFLINE": "1",
    }
    with running_stack(env, log_dir, workers=("llm", "embeddings", "queries", "billing")) as system:
        yield system


# Script errors of every console page, reported with a failing step.
PAGE_ERRORS: list[str] = []


async def _context(browser: Browser, base_url: str) -> BrowserContext:
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, base_url=base_url)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    context.on("weberror", lambda error: PAGE_ERRORS.append(str(error.error)))
    context.on("console", lambda message: message.type == "error" and PAGE_ERRORS.append(message.text))
    return context


async def visit(page: Page, path: str, name: str, ready: str) -> None:
    """Opens a console page as a fresh navigation, waits for `ready` (a heading), records its load time."""
    await page.goto(f"/app{path}")
    await expect(page.get_by_role("heading", name=ready, exact=True)).to_be_visible()
    timing = await page.evaluate(
        """() => new Promise((resolve) => {
            const read = () => {
                const [nav] = performance.getEntriesByType("navigation");
                if (nav && nav.loadEventEnd > 0) resolve(nav.loadEventEnd - nav.startTime);
                else setTimeout(read, 50);
            };
            read();
        })"""
    )
    LOAD_TIMES.setdefault(name, float(timing))


async def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def sign_up(page: Page, email: str) -> None:
    await page.goto("/app/signup/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await shoot(page, "signup")
    await page.get_by_role("button", name="Create your account").click()
    await expect(page.get_by_role("heading", name="Assistants", exact=True)).to_be_visible()


async def create_assistant(page: Page) -> None:
    await visit(page, "/", "assistants", "Assistants")
    await expect(page.get_by_text("No assistants yet")).to_be_visible()
    await page.get_by_role("button", name="New assistant").click()
    form = page.get_by_role("form", name="New assistant")
    await form.get_by_label("Name").fill("Kettle shop")
    await form.get_by_label("System prompt").fill("Answer from the shop's policies.")
    await form.get_by_role("button", name="Create assistant").click()
    await expect(page.get_by_role("heading", name="Kettle shop")).to_be_visible()
    await shoot(page, "assistants")


async def upload_document(page: Page, tmp: Path) -> None:
    await visit(page, "/knowledge/", "knowledge", "Knowledge")
    policy = tmp / "returns.md"
    policy.write_text(f"# Returns\n\n{RETURNS}\n", encoding="utf-8")
    notes = tmp / "notes.txt"
    notes.write_text("Opening hours. The shop opens at nine and closes at six.\n", encoding="utf-8")
    await page.locator("#files").set_input_files([str(policy), str(notes)])
    await expect(page.get_by_text("returns.md: uploaded, indexing")).to_be_visible()
    await expect(page.get_by_text("notes.txt: uploaded, indexing")).to_be_visible()
    await expect(page.locator("tr[data-document-status]")).to_have_count(2)
    # document.status events move the row to ready without a reload.
    returns = page.locator("tr[data-document-status]", has_text="returns.md")
    await expect(returns).to_have_attribute("data-document-status", "ready", timeout=SLOW_MS)
    await page.get_by_label("Query").fill("return a kettle")
    await page.get_by_role("button", name="Search", exact=True).click()
    await expect(page.get_by_text(re.compile(r"returns\.md · score"))).to_be_visible(timeout=SLOW_MS)
    await shoot(page, "knowledge")


async def chat_in_playground(page: Page) -> None:
    await visit(page, "/playground/", "playground", "Playground")
    await page.get_by_role("button", name="Start a conversation").click()
    box = page.get_by_role("textbox", name="Message")
    await box.fill(QUESTION)
    await box.press("Enter")
    await expect(page.get_by_role("article", name="You")).to_have_text(QUESTION)
    reply = page.get_by_role("article", name="Assistant")
    # Streaming: the reply shows part of its text while it is still being written.
    streaming = page.locator("article[data-reply-status=generating]", has_text="offline mode")
    await expect(streaming).to_be_visible(timeout=SLOW_MS)
    await expect(page.locator("article[data-reply-status=completed]")).to_be_visible(timeout=SLOW_MS)
    await expect(reply).to_contain_text("thirty days")
    await expect(reply.get_by_role("link", name="returns.md")).to_be_visible()
    await expect(reply.get_by_test_id("usage")).to_contain_text("completion tokens")
    await shoot(page, "playground")


async def connect_bot(page: Page, fake_telegram: FakeTelegram) -> str:
    token, _ = fake_telegram.new_bot(username="kettle_shop_bot")
    await visit(page, "/channels/", "channels", "Channels")
    await page.get_by_label("Bot token from @BotFather").fill(token)
    await page.get_by_role("button", name="Connect bot").click()
    bot = page.locator("[data-bot=kettle_shop_bot]")
    await expect(bot).to_contain_text("@kettle_shop_bot → Kettle shop")
    await expect(bot).to_contain_text("active")
    await bot.get_by_role("button", name="Pause").click()
    await expect(bot).to_contain_text("Paused by its owner")
    await bot.get_by_role("button", name="Resume").click()
    await expect(bot.get_by_role("button", name="Pause")).to_be_visible()
    await expect(bot).not_to_contain_text("Paused by its owner")
    return token


async def embed_widget(page: Page, context: BrowserContext, site: tuple[Path, int]) -> None:
    root, port = site
    origin = f"http://127.0.0.1:{port}"
    await page.get_by_label(re.compile("Allowed origins")).fill(origin)
    await page.get_by_role("button", name="Save origins").click()
    await expect(page.get_by_text("Saved.")).to_be_visible()
    await page.get_by_role("button", name="Copy snippet").click()
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()
    snippet = await page.evaluate("navigator.clipboard.readText()")
    assert "/widget.js" in snippet and "data-public-key=" in snippet, snippet
    preview = page.frame_locator("iframe[title='Widget preview']")
    await expect(preview.get_by_role("button", name="Open chat")).to_be_visible()
    await shoot(page, "channels")

    (root / "shop.html").write_text(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Kettles</title></head>"
        f"<body><h1>Kettles</h1>{snippet}</body></html>",
        encoding="utf-8",
    )
    shop = await context.new_page()
    await shop.goto(f"{origin}/shop.html")
    await shop.get_by_role("button", name="Open chat").click()
    box = shop.get_by_role("textbox", name="Message")
    await box.fill("Do you sell kettles?")
    await box.press("Enter")
    await expect(shop.locator(".msg.assistant").last).to_contain_text(
        "You wrote: Do you sell kettles?", timeout=SLOW_MS
    )
    await shop.close()


async def read_inbox(page: Page) -> None:
    await visit(page, "/inbox/", "inbox", "Inbox")
    widget_dialog = page.get_by_role("button", name=re.compile(r"widget"))
    await widget_dialog.first.click()
    transcript = page.get_by_role("region", name="Transcript")
    await expect(transcript).to_contain_text("Do you sell kettles?")
    await expect(transcript).to_contain_text("You wrote: Do you sell kettles?")
    await shoot(page, "inbox")


async def top_up(page: Page, http: httpx.AsyncClient, fake_stripe: FakeStripe) -> None:
    await visit(page, "/billing/", "billing", "Billing")
    await expect(page.get_by_test_id("balance")).to_be_visible()
    await page.get_by_label(re.compile("Amount")).fill("10")
    await page.get_by_role("button", name="Pay with Stripe").click()
    await page.wait_for_url(re.compile(re.escape(fake_stripe.base_url) + r"/pay/"))
    session_id = page.url.rsplit("/", 1)[-1]
    payload, signature = await asyncio.to_thread(fake_stripe.complete, session_id)
    r = await http.post(
        "/api/payments/stripe/webhook",
        content=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )
    assert r.status_code == 200 and r.json()["outcome"] == "credited", r.text
    await page.goto("/app/billing/")
    # The signup credit is a top-up too; the payment is the one of 10 USD.
    await expect(page.locator("tr[data-kind=topup]", has_text="10.00 USD")).to_have_count(1)
    await shoot(page, "billing")


async def see_analytics(page: Page) -> None:
    await visit(page, "/analytics/", "analytics", "Analytics")
    charts = page.get_by_test_id("usage-charts")
    await expect(charts).to_be_visible()
    # Recharts draws one bar per period and series with data.
    await expect(charts.locator(".recharts-bar-rectangle").first).to_be_visible()
    await shoot(page, "analytics")


async def admin_changes_a_price(
    browser: Browser, base_url: str, http: httpx.AsyncClient, database_url: str
) -> None:
    admin = await signup(http, "console-admin")
    make_admin(database_url, admin.user_id)
    context = await _context(browser, base_url)
    page = await context.new_page()
    await page.goto("/app/login/")
    await page.get_by_label("Email").fill(admin.email)
    await page.get_by_label("Password").fill(admin.password)
    await shoot(page, "login")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("link", name="Admin")).to_be_visible()
    await visit(page, "/admin/", "admin", "Admin")
    form = page.get_by_role("form", name="Set a price")
    await form.get_by_label("Model").fill("console-test-model")
    await form.get_by_label("Input (USD)").fill("1.25")
    await form.get_by_label("Output (USD)").fill("2.5")
    await form.get_by_role("button", name="Save price").click()
    await expect(page.get_by_text("Price saved.")).to_be_visible()
    await expect(page.locator("tr[data-model=console-test-model]")).to_contain_text("1.25 USD")
    await expect(page.get_by_test_id("audit-rows")).to_contain_text("console-test-model")
    await shoot(page, "admin")
    await context.close()


async def test_console_journey(
    http: httpx.AsyncClient,
    stack: Stack,
    browser: Browser,
    fake_telegram: FakeTelegram,
    fake_stripe: FakeStripe,
    host_site: tuple[Path, int],
    database_url: str,
    tmp_path: Path,
) -> None:
    context = await _context(browser, stack.base_url)
    page = await context.new_page()
    try:
        await sign_up(page, "owner-console@example.com")
        await create_assistant(page)
        await upload_document(page, tmp_path)
        await chat_in_playground(page)
        await connect_bot(page, fake_telegram)
        await embed_widget(page, context, host_site)
        await read_inbox(page)
        await top_up(page, http, fake_stripe)
        await see_analytics(page)
    except AssertionError as failed:
        await page.screenshot(path=str(ARTIFACTS / "test_console_browser" / "failed.png"), full_page=True)
        raise AssertionError(f"{failed}\nscript errors in the console: {PAGE_ERRORS}") from None
    finally:
        await context.close()
    await admin_changes_a_price(browser, stack.base_url, http, database_url)

    print("\nconsole first loads (Navigation Timing, loadEventEnd):")
    for name, ms in LOAD_TIMES.items():
        print(f"  {name:<12} {ms:7.0f} ms")
    slow = {name: ms for name, ms in LOAD_TIMES.items() if ms >= FIRST_LOAD_BUDGET_MS}
    assert not slow, f"pages over {FIRST_LOAD_BUDGET_MS} ms on first load: {slow}"
