"""Seed 002: the phone's screen, served by the device agent, used by a person in headless
Chromium (Playwright, Debian's chromium, no browser download). The agents run on the
in-memory bus with their real handlers; the browser talks HTTP to the device agent's front.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kessai.settings import Settings
from tests.e2e.conftest import E2E_TIMINGS, free_port
from tests.e2e.pages import Pumped, chromium, pumped
from tests.e2e.wakeup_world import WAKEUP_AGENTS, WAKEUP_ENV, receipt, ref, sale


@pytest.fixture
async def phone(keys_dir: Path, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Pumped, str, Any]]:
    port = free_port()
    for k, v in {**WAKEUP_ENV, "KESSAI_DEVICE_HTTP_PORT": str(port)}.items():
        monkeypatch.setenv(k, v)
    settings = Settings(keys_dir=keys_dir, data_dir=tmp_path, **E2E_TIMINGS)
    async with pumped(settings, WAKEUP_AGENTS) as tier, chromium() as browser:
        yield tier, f"http://127.0.0.1:{port}", await browser.new_page()


async def shows(page: Any, screen: str) -> str:
    await page.wait_for_selector(f'#screen[data-screen="{screen}"]', timeout=15_000)
    return str(await page.text_content("#screen-text"))


async def log_in(page: Any, card: str, user_id: str, password: str, pos_id: str) -> None:
    await page.wait_for_selector("#login")
    await page.select_option("#card", card)
    await page.fill("#user-id", user_id)
    await page.fill("#password", password)
    await page.fill("#pos", pos_id)
    await page.click("#login")


async def test_a_person_pays_on_the_phone_screen(phone: tuple[Pumped, str, Any]) -> None:
    """Credential entry (D1), the wake-up arriving (D5), the details with Agree (D8), the
    method list of Fig. 10 (D9), the completion (D10); the POS prints the receipt."""
    tier, url, page = phone
    await page.goto(f"{url}/phone/1234567")
    sale_ref = ref()
    await sale(tier, "pos-1", sale_ref)
    await log_in(page, "CARD A", "00001", "ABCDEF", "pos-1")
    details = await shows(page, "details")
    assert "shop A" in details and "Total amount is 4620 JPY" in details
    await page.click("text=Agree")
    await shows(page, "methods")
    labels = [t.strip() for t in await page.locator("#actions label").all_text_contents()]
    assert labels == ["L: lump sum", "I: installments", "R: revolving"]
    await page.check("input[value=I]")
    await page.click("text=OK")
    assert await shows(page, "completed") == "Payment has now been completed."
    r = await receipt(tier, "pos-1", sale_ref)
    assert r.outcome == "COMPLETED" and "METHOD installments" in r.lines


async def test_a_wrong_password_on_the_screen_is_rejected(phone: tuple[Pumped, str, Any]
                                                          ) -> None:
    tier, url, page = phone
    await page.goto(f"{url}/phone/2234567")
    await log_in(page, "CARD A", "00002", "WRONG", "pos-2")
    assert "rejected" in await shows(page, "rejected")
    assert tier.bus.messages("kessai.shortrange.user-ids") == []


async def test_not_agree_on_the_screen_sends_nothing(phone: tuple[Pumped, str, Any]) -> None:
    tier, url, page = phone
    await page.goto(f"{url}/phone/2234567")
    await sale(tier, "pos-2", ref())
    await log_in(page, "CARD A", "00002", "FEDCBA", "pos-2")
    await shows(page, "details")
    sent = len(tier.bus.log.get("kessai.paygate.sessions", []))
    await page.click("text=Not agree")
    await shows(page, "stopped")
    assert len(tier.bus.log.get("kessai.paygate.sessions", [])) == sent


async def test_embodiment_2_confirmation_answered_on_the_screen(
        phone: tuple[Pumped, str, Any]) -> None:
    from schemas.wakeup import PosSale
    from tests.e2e.wakeup_world import FIG16_ITEMS, TAX

    tier, url, page = phone
    await page.goto(f"{url}/phone/1234567")
    sale_ref = ref()
    await tier.send("kessai.pos.sales", PosSale("pos-1", sale_ref, FIG16_ITEMS, TAX, "JPY",
                                                encrypted_card_user="00001"), "pos-1",
                    "operator")
    await shows(page, "confirm")
    await page.fill("#reply-password", "ABCDEF")
    await page.click("#reply")
    r = await receipt(tier, "pos-1", sale_ref)
    assert r.outcome == "COMPLETED", r.lines
