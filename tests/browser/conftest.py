"""A real headless Chromium (Debian's ``chromium``) driven by Playwright, and the API with its
console served over real HTTP against the sandbox."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect
from pydantic import SecretStr

from ecosign_orchestrator.service.api import create_app
from tests.conftest import in_ci
from tests.support.api import serve_in_thread
from tests.support.flows import SandboxAdmin, flow_settings

WRITE = "console-write-token-7c1e9d"
READ = "console-read-token-2b8f4a"
#: A named write token: what it does is recorded as done by ops-alice.
ALICE = "console-alice-token-5e0b3f"
#: Chromium's own background traffic is refused on these machines: turn it off.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXPECTED_REFUSAL = re.compile(r"Failed to load resource: .* status of 40[13]")
ROOT = Path(__file__).resolve().parents[2]

expect.set_options(timeout=20_000)


def artifacts() -> Path:
    """Where screenshots go (``TEST_ARTIFACTS``, else ``test-artifacts/`` in the checkout)."""
    folder = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium; in CI a browser that cannot start fails the test."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        message = "chromium is not installed (make test installs it with apt-get)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def console(sandbox_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """The API (embedded worker, SQLite) with tokens, over real HTTP; a write client; the
    sandbox's admin."""
    settings = flow_settings(
        sandbox_url,
        database_url=SecretStr(f"sqlite:///{tmp_path}/jobs.db"),
        api_tokens=[SecretStr(WRITE), SecretStr(f"ops-alice:{ALICE}")],
        api_read_tokens=[SecretStr(READ)],
    )
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    with serve_in_thread(create_app(settings)) as url:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {WRITE}"}, timeout=30
        ) as client:
            yield {"url": url, "client": client, "admin": admin}
    await admin.aclose()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A fresh browser tab at 1280 px; console errors and failed requests fail the test
    (except the statuses a test expects: ``@pytest.mark.answers(404)``)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    expected = [m.args[0] for m in request.node.iter_markers("answers")]

    def on_console(msg: ConsoleMessage) -> None:
        # The browser itself logs each 401/403 answer; the console asks for a token on those.
        if msg.type != "error" or EXPECTED_REFUSAL.search(msg.text):
            return
        if any(f"status of {status} " in msg.text for status in expected):
            return
        errors.append(f"console {msg.type}: {msg.text}")

    tab.on("console", on_console)
    try:
        yield tab
    finally:
        await context.close()
    assert not errors, errors


async def fits(page: Page, selector: str, width: int) -> None:
    """No element inside ``selector`` reaches past ``width`` px (nothing behind a sideways
    scroll)."""
    widest = await page.locator(selector).evaluate(
        """(root) => Math.max(0, ...[root, ...root.querySelectorAll("*")]
            .filter((e) => e.getClientRects().length)
            .map((e) => e.getBoundingClientRect().right))"""
    )
    assert widest <= width, f"{selector} reaches {widest} px at a {width} px viewport"


async def sign_in(page: Page, token: str) -> None:
    """Answer the console's token prompt."""
    dialog = page.locator("#token-dialog")
    await expect(dialog).to_be_visible()
    await page.fill("#token-input", token)
    await page.click("#token-form button[type=submit]")
    await expect(dialog).to_be_hidden()
