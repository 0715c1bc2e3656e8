"""Seed 002 V3 in a browser: a person checks out at the web shop's page (served by the web
shop agent) with their user id and confirms on the phone's page (served by the device agent),
both in headless Chromium (Playwright, Debian's chromium). The agents run on the in-memory
bus with their real handlers; the pages talk HTTP to their agents' fronts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kessai.settings import Settings
from sim import devdata
from tests.e2e.conftest import E2E_TIMINGS, free_port
from tests.e2e.pages import Pumped, chromium, pumped
from tests.e2e.test_wakeup_phone_browser import log_in, shows
from tests.e2e.wakeup_world import WAKEUP_AGENTS, WAKEUP_ENV

CARD_NUMBERS = [u.card_number for u in devdata.WAKEUP_USERS if u.card_number]


@pytest.fixture
async def world(keys_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> AsyncIterator[tuple[Pumped, dict[str, str], Any]]:
    ports = {"KESSAI_DEVICE_HTTP_PORT": free_port(), "KESSAI_WEBSHOP_PORT": free_port()}
    for k, v in {**WAKEUP_ENV, **{k: str(p) for k, p in ports.items()}}.items():
        monkeypatch.setenv(k, v)
    urls = {"phone": f"http://127.0.0.1:{ports['KESSAI_DEVICE_HTTP_PORT']}",
            "shop": f"http://127.0.0.1:{ports['KESSAI_WEBSHOP_PORT']}"}
    settings = Settings(keys_dir=keys_dir, data_dir=tmp_path, **E2E_TIMINGS)
    async with pumped(settings, WAKEUP_AGENTS) as tier, chromium() as browser:
        yield tier, urls, browser


async def shop_shows(page: Any, status: str) -> str:
    await page.wait_for_selector(f'#status[data-status="{status}"]', timeout=15_000)
    return str(await page.text_content("#status-text"))


async def buy(urls: dict[str, str], phone: Any, shop: Any) -> str:
    """Log in on the phone, check out at the shop, agree, pay lump sum: the shop's text."""
    await phone.goto(f"{urls['phone']}/phone/1234567")
    await log_in(phone, "CARD A", "00001", "ABCDEF", "")
    await shows(phone, "authenticated")
    await shop.goto(f"{urls['shop']}/shop/webshop-1")
    await shop.fill("input[name=TEA1]", "2")
    await shop.fill("input[name=MUG1]", "1")
    await shop.fill("#user-id", "00001")
    await shop.click("#checkout")
    waiting = await shop_shows(shop, "waiting_phone")
    assert "4620 JPY" in waiting  # 2 × 1200 + 1800, 10 % tax: priced by the shop
    details = await shows(phone, "details")
    assert "shop A" in details and "Total amount is 4620 JPY" in details
    await phone.click("text=Agree")
    await shows(phone, "methods")
    await phone.check("input[value=L]")
    await phone.click("text=OK")
    assert await shows(phone, "completed") == "Payment has now been completed."
    return await shop_shows(shop, "completed")


async def test_a_person_buys_at_the_web_shop_and_confirms_on_the_phone(
        world: tuple[Pumped, dict[str, str], Any]) -> None:
    """V3 (X3 (10)): authenticate on the phone, check out at the shop with the user id; the
    phone is woken, shows the details, Agree, a method; the shop's page shows the completion.
    No page of the shop ever holds a card number."""
    tier, urls, browser = world
    phone, shop = await browser.new_page(), await browser.new_page()
    done = await buy(urls, phone, shop)
    assert done.startswith("Payment has now been completed. Transaction ")
    content = await shop.content()
    assert not [c for c in CARD_NUMBERS if c in content]
    assert tier.bus.messages("kessai.pos.completions") == []


async def test_the_phone_page_shows_the_users_transaction_history(
        world: tuple[Pumped, dict[str, str], Any]) -> None:
    """V4 ([0120]): after paying, the person opens the history on the phone's page: the
    gateway's HTML of table 154b lists the transaction (merchant, goods, total, method,
    outcome) and no card number."""
    _, urls, browser = world
    phone, shop = await browser.new_page(), await browser.new_page()
    done = await buy(urls, phone, shop)
    number = done.split("Transaction ")[1].split(",")[0].rstrip(".")
    await phone.click("#show-history")
    row = phone.locator(f'#history tr.txn[data-txn="{number}"]')
    await row.wait_for(timeout=15_000)
    text = " ".join((await row.inner_text()).split())
    for shown in (number, "A (1111111111)", "Sencha 100g ×2", "Mug ×1", "4620 JPY",
                  "lump sum", "COMPLETED"):
        assert shown in text, (shown, text)
    content = await phone.content()
    assert not [c for c in CARD_NUMBERS if c in content]
