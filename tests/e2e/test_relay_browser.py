"""Seeds 000/001 in a real browser: headless Chromium, driven by Playwright, buys at the
shop's HTTP front and pays through the relay as two terminal profiles (phone and game). The
pages render the amount, the shop's final-payment button posts to the relay (claim 3), and no
page's HTML ever holds a card number or the wallet's cookie (claims 2/3, R40, R43).

The browser is Debian's ``chromium`` (``.ci/run`` installs it); Playwright drives it, so no
browser is downloaded. Without Chromium the test skips on a developer's machine and fails in
CI (``CI=true``): the claims it demonstrates must be shown there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page

from tests.e2e.bus import relay_up
from tests.e2e.conftest import System
from tests.e2e.pages import chromium
from tests.e2e.test_pan_scan import pans_in

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.timeout(300)]

STEP_MS = 90_000


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium under Playwright; closed at the end."""
    async with chromium() as b:
        yield b


async def state(page: Page) -> dict[str, Any]:
    """The page as the user sees it (innerText) and as it was sent (its HTML)."""
    info: dict[str, Any] = await page.evaluate(
        "() => ({text: document.body ? document.body.innerText : '', "
        "forms: Array.from(document.forms).map(f => f.action), "
        "links: Array.from(document.links).map(a => a.textContent.trim())})")
    info["url"], info["html"] = page.url, await page.content()
    info["actions"] = [urlsplit(a).path for a in info["forms"]]
    return info


async def submit(page: Page, path: str, values: dict[str, str] | None = None) -> None:
    """Fill the first form posting to ``path``, press its button, wait for the next page."""
    form = page.locator(f"form[action$='{path}']").first
    for name, value in (values or {}).items():
        await form.locator(f"[name={name}]").fill(value)
    async with page.expect_navigation(timeout=STEP_MS):
        await form.locator("button").first.click()


async def click(page: Page, element_id: str) -> None:
    async with page.expect_navigation(timeout=STEP_MS):
        await page.click(f"#{element_id}")


async def buy_in_the_browser(page: Page, system: System, profile: str) -> list[dict[str, Any]]:
    """①② at the shop, then the relay's pages until the result; every page seen."""
    seen: list[dict[str, Any]] = []
    await page.goto(f"{system.shop_url}/shop-1/?profile={profile}", timeout=STEP_MS)
    for element in ("add-XXXX", "more", "add-YYYY", "confirm"):
        await click(page, element)
    seen.append(await state(page))
    await page.fill("#user", "alice")
    await click(page, "pay")
    deadline = time.monotonic() + 3 * STEP_MS / 1000
    while time.monotonic() < deadline:
        current = await state(page)
        seen.append(current)
        actions = current["actions"]
        if "Payment completed" in current["text"]:
            return seen
        if "/login" in actions:
            await submit(page, "/login", {"user_name": "alice", "password": "alice-wallet-pw"})
        elif "/conditions" in actions:
            await submit(page, "/conditions")
        elif "/approve" in actions:
            await submit(page, "/approve")
        elif "/inquire" in actions:
            await asyncio.sleep(0.5)
            await submit(page, "/inquire")
        elif "next" in current["links"]:
            async with page.expect_navigation(timeout=STEP_MS):
                await page.get_by_role("link", name="next", exact=True).first.click()
        else:
            raise AssertionError(f"stuck on a page: {current['text'][:300]!r}")
    raise TimeoutError(f"no result page for the {profile}")


async def test_purchase_in_headless_chromium_as_phone_and_game(system: System,
                                                               browser: Browser) -> None:
    await relay_up(system)
    relay = urlsplit(system.relay_url)
    for profile in ("phone", "game"):
        context = await browser.new_context()
        try:
            seen = await buy_in_the_browser(await context.new_page(), system, profile)
        finally:
            await context.close()
        confirm_at_shop, *relay_pages = seen
        assert "Total 1155 JPY" in confirm_at_shop["text"]
        # Claim 3: the shop's final-payment button posts to the relay, not to the shop.
        pay_forms = [urlsplit(a) for a in confirm_at_shop["forms"]
                     if urlsplit(a).netloc == relay.netloc]
        assert pay_forms, f"no form of the shop's confirm page posts to the relay: " \
                          f"{confirm_at_shop['forms']}"
        assert all(urlsplit(a).netloc in (relay.netloc, urlsplit(system.shop_url).netloc)
                   for a in confirm_at_shop["forms"])
        assert relay_pages and all(urlsplit(p["url"]).netloc == relay.netloc
                                   for p in relay_pages)
        confirming = [p for p in relay_pages if "/approve" in p["actions"]]
        assert confirming and "1155 JPY" in confirming[0]["text"]  # claim 5, R27
        result = relay_pages[-1]
        assert "Payment completed" in result["text"] and "1155 JPY" in result["text"]
        for page in seen:
            assert not pans_in(page["html"].encode()), f"card number on {page['url']}"
            assert "session_id=" not in page["html"]  # the wallet's cookie (R28)
        if profile == "phone":
            assert "Confirm payment" in confirming[0]["text"]
        else:
            assert "Please confirm your payment" in confirming[0]["text"]

