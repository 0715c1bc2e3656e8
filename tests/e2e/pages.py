"""What the browser tests share: Debian's headless Chromium under Playwright (no browser
download), and an in-memory tier that is drained continuously, because a person's clicks
arrive by HTTP at any time.

In CI (``CI=true``) a missing Chromium fails the test instead of skipping it: the pages are
a human step of the protocol, and docs/claims.md names these tests for claims.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kessai.settings import Settings
from tests.e2e.tiers import MemoryTier

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """Chromium's path; skips the test without one, or fails it in CI."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is not installed: CI must run the browser tests "
                        "(apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A launched headless Chromium (a Playwright ``Browser``), closed on exit."""
    path = require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


class Pumped(MemoryTier):
    """The in-memory tier with a background pump: the bus is drained continuously (one drain
    at a time, in order) and the injected clock follows the wall clock roughly, so timers
    (the POS's poll) come round."""

    lock: asyncio.Lock

    async def send(self, topic: str, msg: Any, key: str, actor: str) -> None:
        async with self.lock:
            await self.bus.send(topic, msg, key, actor)
            await self.bus.drain()

    async def wait_for(self, topic: str, predicate: Any, timeout: float = 30.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self.lock:
                await self.bus.drain()
                for msg in self.bus.messages(topic):
                    if predicate(msg):
                        return msg
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(topic)
            await asyncio.sleep(0.1)

    async def _pump(self) -> None:
        while True:
            async with self.lock:
                self.clock.advance(50)
                await self.bus.tick()
            await asyncio.sleep(0.05)


@asynccontextmanager
async def pumped(settings: Settings, agents: Iterable[str]) -> AsyncIterator[Pumped]:
    """A started :class:`Pumped` tier of ``agents``; stopped on exit."""
    tier = Pumped(settings, list(agents))
    tier.lock = asyncio.Lock()
    await tier.bus.start()
    task = asyncio.create_task(tier._pump())
    try:
        yield tier
    finally:
        task.cancel()
        await tier.bus.stop()
