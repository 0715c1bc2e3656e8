"""The user's prompts in a real browser (headless Chromium through Playwright, no download):
carol picks a module on the selector's page (Ex 2), and types a slave's address for her
master server wallet (Ex 10) — the page is the selector's console, in front of the real
agents on the in-memory bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from agents.serverwallet.master import MasterConfig
from kessai.membus import MemoryBus
from schemas.selector import HandedWakeup, Prompt, SlaveRequest
from sim import devkeys
from sim.selector_world import (
    buy,
    client,
    close_worlds,
    modules,
    seconds_from,
    user_results,
    world,
)
from tests.e2e.conftest import free_port
from tests.e2e.pages import chromium


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with chromium() as b:
        yield b
    await close_worlds()


async def serve(bus: MemoryBus) -> tuple[str, web.AppRunner]:
    selector = next(c for c in bus.contexts if c.name == "selector")
    console = next(r.handler.__self__ for r in selector.routes  # type: ignore[attr-defined]
                   if r.topic == "kessai.selector.prompts")
    runner = web.AppRunner(console.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}", runner


async def test_the_user_picks_a_module_in_the_browser(keydir: Path, tmp_path: Path,
                                                      browser) -> None:  # type: ignore[no-untyped-def]
    bus = world(keydir, tmp_path, clients=client("ask"))
    base, runner = await serve(bus)
    try:
        await buy(bus, "s-browser")
        [p] = bus.messages("kessai.selector.prompts", Prompt)
        page = await browser.new_page()
        await page.goto(f"{base}/prompts?client=carol")
        assert "Which wallet should pay?" in await page.content()
        await page.check("#choice-wum-carol-b")
        await page.click("button[value=answer]")
        assert "Sent: wum-carol-b." in await page.inner_text("#notice")
        await bus.drain()
        [h] = bus.messages("kessai.wum.wakeups", HandedWakeup)
        assert (h.wakeup_id, h.module_id) == (p.wakeup_id, "wum-carol-b")
        assert seconds_from(bus) == ["wallet-b"]
        assert [r.outcome for r in user_results(bus)] == ["APPROVED"]
        await page.goto(f"{base}/prompts?client=carol")
        assert await page.is_visible("#none")  # answered: nothing left to choose
    finally:
        await runner.cleanup()


async def test_the_user_types_a_slave_address_in_the_browser(keydir: Path, tmp_path: Path,
                                                             browser) -> None:  # type: ignore[no-untyped-def]
    from agents.wum.agent import ModuleConfig
    from protocols.user import delivery_for
    from schemas.v1 import OrderRequest

    bus = world(keydir, tmp_path, clients=client("ask"),
                mods=modules(**{"wum-carol-a": ModuleConfig("wum-carol-a", "carol",
                                                            ["wallet-a"], direct=True)}),
                masters={"wallet-a": {"carol": MasterConfig(ask_address=True,
                                                            allow=["wallet-b"])}})
    base, runner = await serve(bus)
    try:
        await bus.send("kessai.order-requests", OrderRequest(
            "s-addr", "carol", "shop-1", [["XXXX", 1]], delivery_for("carol"),
            scenario={"result_mode": "DIRECT_BOTH", "brands": ["mastercard"]}),
            "s-addr", "wum-carol-a")
        await bus.drain()
        page = await browser.new_page()
        await page.goto(f"{base}/prompts?client=carol")
        await page.fill("#address", "evil.example")  # not on the master's allow-list
        await page.click("button[value=answer]")
        await bus.drain()
        assert bus.log.get("kessai.wallet.slaves", []) == []
        # The master ignored it and asked again: the page shows the question again.
        assert "not on the allow-list" in " ".join(
            m.detail for m in bus.messages("kessai.audit"))
        await page.goto(f"{base}/prompts?client=carol")
        await page.fill("#address", "wallet-b")
        await page.click("button[value=answer]")
        await bus.drain()
        assert [r.slave_id for r in bus.messages("kessai.wallet.slaves", SlaveRequest)] == [
            "wallet-b"]
        assert [r.outcome for r in user_results(bus)] == ["APPROVED"]
    finally:
        await runner.cleanup()
