"""Seeds 000/001 in a real browser: headless Chromium, driven over the DevTools protocol, buys
at the shop's HTTP front and pays through the relay as two terminal profiles (phone and game).
The pages render the amount, and no page's HTML ever holds a card number (R40, R43).

Skipped when Chromium is not installed (CI installs Debian's ``chromium``; see ``.ci/run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.e2e.bus import relay_up
from tests.e2e.conftest import System, free_port
from tests.e2e.test_pan_scan import pans_in

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STEP_S = 90.0


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A headless Chromium with a DevTools port; killed at the end."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the browser test "
                    "needs a real headless browser")
    port = free_port()
    profile_dir = tmp_path_factory.mktemp("chromium")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--remote-debugging-port={port}", f"--user-data-dir={profile_dir}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True)
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class DevTools:
    """The few DevTools-protocol calls the test needs, over aiohttp's websocket client."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self._ids)
        await self.ws.send_json({"id": n, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=STEP_S)
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    async def state(self) -> dict[str, Any]:
        """The page as the user sees it (innerText) and as it was sent (outerHTML)."""
        raw = await self.evaluate(
            "JSON.stringify({url: location.href, text: document.body ? "
            "document.body.innerText : '', html: document.documentElement.outerHTML, "
            "forms: Array.from(document.forms).map(f => new URL(f.action).pathname), "
            "links: Array.from(document.links).map(a => a.textContent.trim())})")
        return dict(json.loads(raw))

    async def act(self, script: str) -> None:
        """Run ``script`` (which submits a form or follows a link); wait for the next page."""
        await self.evaluate("window.__kessai_old = true")
        await self.evaluate(script)
        deadline = time.monotonic() + STEP_S
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):  # the old document is going away
                if await self.evaluate("window.__kessai_old === undefined && "
                                       "document.readyState === 'complete'"):
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError("the browser did not load the next page")

    async def navigate(self, url: str) -> None:
        await self.act(f"location.href = {json.dumps(url)}")


@contextlib.asynccontextmanager
async def devtools(port: int) -> AsyncIterator[DevTools]:
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as r:
                    target = await r.json(content_type=None)
                break
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.call("Runtime.enable")
            yield tools
        async with http.get(f"http://127.0.0.1:{port}/json/close/{target['id']}"):
            pass


def submit(path: str, values: dict[str, str] | None = None) -> str:
    """A script that fills the first form posting to ``path`` and presses its button."""
    fills = "".join(f"f.querySelector('[name={name}]').value = {json.dumps(value)};"
                    for name, value in (values or {}).items())
    return (f"(() => {{ const f = Array.from(document.forms).find(f => "
            f"new URL(f.action).pathname === {json.dumps(path)}); {fills} "
            f"f.querySelector('button').click(); }})()")


def click(element_id: str) -> str:
    return f"document.getElementById({json.dumps(element_id)}).click()"


async def buy_in_the_browser(tools: DevTools, system: System, profile: str) -> list[dict[str,
                                                                                        Any]]:
    """①② at the shop, then the relay's pages until the result; every page seen."""
    seen: list[dict[str, Any]] = []
    await tools.navigate(f"{system.shop_url}/shop-1/?profile={profile}")
    for step in (click("add-XXXX"), click("more"), click("add-YYYY"), click("confirm")):
        await tools.act(step)
    seen.append(await tools.state())
    await tools.act("document.getElementById('user').value = 'alice';"
                    + click("pay"))
    deadline = time.monotonic() + 3 * STEP_S
    while time.monotonic() < deadline:
        page = await tools.state()
        seen.append(page)
        forms = page["forms"]
        if "Payment completed" in page["text"]:
            return seen
        if "/login" in forms:
            await tools.act(submit("/login", {"user_name": "alice",
                                              "password": "alice-wallet-pw"}))
        elif "/conditions" in forms:
            await tools.act(submit("/conditions"))
        elif "/approve" in forms:
            await tools.act(submit("/approve"))
        elif "/inquire" in forms:
            await asyncio.sleep(0.5)
            await tools.act(submit("/inquire"))
        elif "next" in page["links"]:
            await tools.act("Array.from(document.links).find(a => "
                            "a.textContent.trim() === 'next').click()")
        else:
            raise AssertionError(f"stuck on a page: {page['text'][:300]!r}")
    raise TimeoutError(f"no result page for the {profile}")


async def test_purchase_in_headless_chromium_as_phone_and_game(system: System,
                                                               chromium: int) -> None:
    await relay_up(system)
    for profile in ("phone", "game"):
        async with devtools(chromium) as tools:
            seen = await buy_in_the_browser(tools, system, profile)
        confirm_at_shop, *relay_pages = seen
        assert "Total 1155 JPY" in confirm_at_shop["text"]
        confirming = [p for p in relay_pages if "/approve" in p["forms"]]
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

