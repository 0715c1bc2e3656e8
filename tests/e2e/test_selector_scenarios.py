"""Seed 004 wired into the bus, written once and run on both tiers (tests/e2e/tiers.py): a
two-sided settlement (seed 003) whose payment request wakes a user with two server wallets
settles through the module her selector picked (or, Ex 6–12, through the server wallet her
one module and her master chose) — on the in-memory bus and over real worker processes on
the throwaway broker.

Every example is a development client of its own (``sim.devdata.SELECTOR_EXAMPLES``): its mode
and master/slave set-up come from the key set, read by the selector, module and server-wallet
workers at start; nothing is configured in-process. A prompt (Ex 2, 9, 10, 12) is answered on
the selector's page over HTTP, as a person would: in memory the console the bus serves, on
the broker the selector worker's own page."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kessai import envelope
from schemas.selector import (
    HandedWakeup,
    Preselection,
    Prompt,
    RoutingEvent,
    UnroutableWakeup,
    WalletSettled,
)
from schemas.v1 import PaymentRequest, PaymentResult, PurchaseCommand
from sim import devdata
from sim.selector_live import Live, answer_on_page, open_prompt_page, run_on
from tests.e2e.conftest import E2E_TIMINGS
from tests.e2e.tiers import MemoryTier

AGENTS = ("shop", "settlement", "issuer", "selector", "wum", "serverwallet")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MemorySelectorTier(MemoryTier):
    """The in-memory tier with the agents' start hooks run: the modules publish their brand
    info (Ex 4) and the selector serves its page on ``page_url``."""

    def __init__(self, settings: Any, page_port: int) -> None:
        super().__init__(settings, AGENTS)
        self.page_url = f"http://127.0.0.1:{page_port}"

    def seen(self, topic: str) -> list[Any]:
        return self.bus.messages(topic)

    async def restart_selector(self) -> None:
        """A crash and a restart: the worker's memory is gone; its tables come back as their
        changelogs rebuild them (here: copied), its page is served anew."""
        from tests.agents import agent_module

        old = next(c for c in self.bus.contexts if c.name == "selector")
        for fn in old.host.stops:  # frees the page's port
            await fn()
        self.bus.contexts.remove(old)
        self.bus._hosts.remove(old.host)  # type: ignore[arg-type]
        new = self.bus.add_module("selector", agent_module("selector"))
        for name, table in old.host.tables.items():  # type: ignore[attr-defined]
            new.host.tables[name].update(table)  # type: ignore[attr-defined]
        for fn in new.host.starts:  # type: ignore[attr-defined]
            await fn()


class LiveTier(Live):
    name = "broker"
    page_url = ""
    system: Any = None

    async def restart_selector(self) -> None:
        """kill -9 of the selector worker (no clean shutdown, no final commit), then a new
        one: its tables rebuild from their changelogs."""
        self.system.kill("selector")
        await asyncio.to_thread(self.system.start, "selector")

    async def elapse(self, ms: int) -> None:
        raise NotImplementedError  # the selector scenarios never wait on a clock


@pytest.fixture(scope="module")
async def live(request: pytest.FixtureRequest) -> AsyncIterator[LiveTier]:
    """The session's running system, followed once for the whole module (a consumer that
    starts at the topics' ends and keeps what it reads)."""
    system = request.getfixturevalue("system")
    t = LiveTier(system.settings)
    t.system = system
    t.page_url = f"http://127.0.0.1:{system.workers['selector'].env['KESSAI_SELECTOR_PORT']}"
    await t.start()
    try:
        yield t
    finally:
        await t.stop()


@pytest.fixture
async def memtier(keys_dir, tmp_path,  # type: ignore[no-untyped-def]
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MemorySelectorTier]:
    from kessai.settings import Settings

    port = _free_port()
    monkeypatch.setenv("KESSAI_SELECTOR_PORT", str(port))
    monkeypatch.setenv("KESSAI_SHOP_HTTP_PORT", str(_free_port()))
    t = MemorySelectorTier(Settings(keys_dir=keys_dir, data_dir=tmp_path, **E2E_TIMINGS), port)
    await t.bus.start()
    try:
        yield t
    finally:
        await t.close()


@pytest.fixture(params=["memory", "broker"])
def stier(request: pytest.FixtureRequest) -> Any:
    """The tier a scenario runs on (a plain fixture: it picks one of two async ones)."""
    if request.param == "broker":
        request.applymarker(pytest.mark.broker)
        return request.getfixturevalue("live")
    return request.getfixturevalue("memtier")


# mode → (who decides the route, what it chooses, the server wallet the module asked,
#         who sends the 2nd settlement request, via whom)
ROUTES = {
    "preselect": ("selector", "wum-carol-b", "wallet-b", "wallet-b", "self"),
    "ask": ("selector", "wum-carol-ex2-b", "wallet-b", "wallet-b", "self"),
    "brand-selector": ("selector", "wum-carol-ex3-b", "wallet-b", "wallet-b", "self"),
    "brand-module": ("selector", "wum-carol-ex4-b", "wallet-b", "wallet-b", "self"),
    "brand-live": ("selector", "wum-carol-ex5-a", "wallet-a", "wallet-a", "self"),
    "multi": ("wum-carol-ex6-m", "wallet-b", "wallet-b", "wallet-b", "self"),
    "proxy": ("wallet-a", "wallet-b", "wallet-a", "wallet-b", "proxy:wallet-b"),
    "certificate": ("wallet-a", "wallet-b", "wallet-a", "wallet-a", "certificate:wallet-b"),
    "pick-slave": ("wallet-a", "wallet-b", "wallet-a", "wallet-b", "proxy:wallet-b"),
    "address": ("wallet-a", "wallet-b", "wallet-a", "wallet-b", "proxy:wallet-b"),
    "attached-brands": ("wallet-a", "wallet-b", "wallet-a", "wallet-b", "proxy:wallet-b"),
    "attached-slaves": ("wallet-a", "wallet-b", "wallet-a", "wallet-b", "proxy:wallet-b"),
}


@pytest.mark.parametrize("mode", list(ROUTES))
async def test_each_example_routes_and_settles_from_its_clients_configuration(
        stier: Any, mode: str) -> None:
    """Ex 1–12 (claims 2–13), each for its own development client: the wake-up takes the
    example's route — the module the selector picked (Ex 1–5), the server wallet the common
    module picked (Ex 6), the slave the master chose or the user designated on the page
    (Ex 7–12) — and the purchase settles there. Exactly one hand-over or none, per example."""
    decider, chosen, server, settled_by, via = ROUTES[mode]
    ex = devdata.SELECTOR_EXAMPLES[mode]
    r = await run_on(stier, mode, stier.page_url)
    assert r["outcome"] == "APPROVED", r
    assert (r["server"], r["settled_by"], r["via"]) == (server, [settled_by], [via]), r
    wid = r["wakeup_id"]
    event: RoutingEvent = await stier.wait_for(
        "kessai.selector.routing-events", lambda m: isinstance(m, RoutingEvent)
        and m.wakeup_id == wid and m.decided_by == decider and m.chosen != "")
    assert event.chosen == chosen, event
    if ex.answer:  # the user's answer on the page is what routed it
        assert [p["answer"] for p in r["prompts"]] == [ex.answer]
        assert chosen == ex.answer
    handed = [h for h in stier.seen("kessai.wum.wakeups")
              if isinstance(h, HandedWakeup) and h.wakeup_id == wid]
    if decider == "selector":
        assert [h.module_id for h in handed] == [chosen]
        wake = await stier.wait_for("kessai.wakeups.selector", lambda m: isinstance(
            m, PaymentRequest) and f"{m.shop_id}/{m.order_id}" == wid)
        assert envelope.body_of(envelope.decode(handed[0].original)) == wake
    else:
        assert handed == []  # no selector in Ex 6–12


async def test_a_two_wallet_user_settles_through_the_module_her_selector_picked(
        stier: Any) -> None:
    tier = stier
    session = "sel-" + uuid.uuid4().hex[:10]
    for module in ("wum-carol-a", "wum-carol-b"):  # she changes her mind: the latest counts
        await tier.send("kessai.selector.preselections", Preselection("carol", module),
                        "carol", "operator")
    await tier.send("kessai.selector.commands", PurchaseCommand(
        session, "carol", "shop-1", [["XXXX", 1]], scenario={"result_mode": "DIRECT_BOTH"}),
        "carol", "operator")
    wake: PaymentRequest = await tier.wait_for(
        "kessai.wakeups.selector", lambda m: isinstance(m, PaymentRequest)
        and m.session == session, timeout=60)
    wid = f"{wake.shop_id}/{wake.order_id}"
    handed: HandedWakeup = await tier.wait_for(
        "kessai.wum.wakeups", lambda m: isinstance(m, HandedWakeup) and m.wakeup_id == wid)
    assert handed.module_id == "wum-carol-b" and handed.mode == "preselect"
    inner = envelope.body_of(envelope.decode(handed.original))
    assert inner == wake  # the module got the shop's signed wake-up itself
    event: RoutingEvent = await tier.wait_for(
        "kessai.selector.routing-events", lambda m: isinstance(m, RoutingEvent)
        and m.wakeup_id == wid and m.decided_by == "selector")
    assert (event.chosen, event.reason) == ("wum-carol-b", "preselected")
    done: WalletSettled = await tier.wait_for(
        "kessai.wallet.settled", lambda m: isinstance(m, WalletSettled) and m.wakeup_id == wid)
    assert (done.server_id, done.settled_by, done.via) == ("wallet-b", "wallet-b", "self")
    result: PaymentResult = await tier.wait_for(
        "kessai.payment-results", lambda m: isinstance(m, PaymentResult)
        and m.session == session and m.recipient == "user", timeout=60)
    assert result.outcome == "APPROVED"


async def test_exactly_once_per_wakeup_after_the_selector_is_killed(system) -> None:  # type: ignore[no-untyped-def]
    """R-C2/R-X1 over real processes: for every wake-up id, the deliveries over every module
    input plus the unroutable topic number exactly one, with a kill -9 of the selector worker
    (no clean shutdown, no final commit) in the middle of the purchases."""
    import asyncio

    from tests.e2e import bus

    s = system.settings
    await bus.send(s, "kessai.selector.preselections", Preselection("carol", "wum-carol-a"),
                   "carol", "operator")
    sessions = ["once-" + uuid.uuid4().hex[:10] for _ in range(6)]
    for n, session in enumerate(sessions):
        if n == 3:
            system.kill("selector")
            await asyncio.to_thread(system.start, "selector")
        await bus.send(s, "kessai.selector.commands", PurchaseCommand(
            session, "carol", "shop-1", [["XXXX", 1]],
            scenario={"result_mode": "DIRECT_BOTH"}), "carol", "operator")
        await asyncio.sleep(0.5)
    for session in sessions:
        result = await bus.wait_for(s, "kessai.payment-results", lambda m, ses=session: (
            isinstance(m, PaymentResult) and m.session == ses and m.recipient == "user"),
            timeout=90)
        assert result.outcome == "APPROVED"
    wakes = [envelope.body_of(envelope.decode(r.value))
             for r in await bus.read_all(s, "kessai.wakeups.selector")]
    ours = {f"{w.shop_id}/{w.order_id}" for w in wakes if w.session in sessions}
    assert len(ours) == len(sessions)
    count = dict.fromkeys(ours, 0)
    for topic in ("kessai.wum.wakeups", "kessai.wakeups.unroutable"):
        for r in await bus.read_all(s, topic):
            wid = envelope.body_of(envelope.decode(r.value)).wakeup_id
            if wid in count:
                count[wid] += 1
    assert count == dict.fromkeys(ours, 1)


async def test_an_open_prompt_survives_a_selector_crash_and_is_honoured_once(stier: Any) -> None:
    """Ex 2's prompt is held durably: the selector crashes (kill -9 on the broker) while
    carol-ex2's prompt is open; the restarted selector shows it on its page again, the answer
    given there routes the wake-up, and it is delivered exactly once."""
    client, choice = "carol-ex2", "wum-carol-ex2-a"
    session = "crash-" + uuid.uuid4().hex[:8]
    await stier.send("kessai.selector.commands", PurchaseCommand(
        session, client, "shop-1", [["XXXX", 1]],
        scenario={"result_mode": "DIRECT_BOTH", "brands": ["visa"]}), client, "operator")
    wake: PaymentRequest = await stier.wait_for(
        "kessai.wakeups.selector", lambda m: isinstance(m, PaymentRequest)
        and m.session == session, timeout=60)
    wid = f"{wake.shop_id}/{wake.order_id}"
    await stier.wait_for("kessai.selector.prompts",
                         lambda m: isinstance(m, Prompt) and m.wakeup_id == wid)
    await open_prompt_page(stier.page_url, client, wid)  # the page shows it
    await stier.restart_selector()
    page = await answer_on_page(stier.page_url, client, wid, choice, timeout=60)
    assert f"Sent: {choice}." in page
    done: WalletSettled = await stier.wait_for(
        "kessai.wallet.settled", lambda m: isinstance(m, WalletSettled) and m.wakeup_id == wid,
        timeout=60)
    assert (done.module_id, done.settled_by, done.via) == (choice, "wallet-a", "self")
    result: PaymentResult = await stier.wait_for(
        "kessai.payment-results", lambda m: isinstance(m, PaymentResult)
        and m.session == session and m.recipient == "user", timeout=60)
    # The purchase ends either way: approved, or expired when the restart outlasted the
    # order's lifetime on the test system (t_first 12 s) — the settlement's own, right answer.
    assert result.outcome in ("APPROVED", "EXPIRED")
    delivered = [m for m in stier.seen("kessai.wum.wakeups") + stier.seen(
        "kessai.wakeups.unroutable") if isinstance(m, HandedWakeup | UnroutableWakeup)
        and m.wakeup_id == wid]
    assert [getattr(m, "module_id", "unroutable") for m in delivered] == [choice]


@pytest.mark.broker
async def test_kessai_pay_runs_an_example_on_the_running_system(live: LiveTier) -> None:
    """`kessai pay --flow selector --mode address` against the running workers: carol-ex10's
    master asks for the slave's address, the simulated user types it on the selector's page,
    the master proxies to the slave; the command prints the route and the settlement."""
    import json
    import subprocess
    import sys

    s = live.settings
    out = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "kessai.cli", "pay", "--flow", "selector", "--mode", "address",
        "--json", "--bootstrap", s.bootstrap, "--keys", str(s.keys_dir),
        "--selector-url", live.page_url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    [row] = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert (row["example"], row["client"], row["outcome"]) == (10, "carol-ex10", "APPROVED")
    assert row["prompts"] == [{"asked_by": "wallet-a", "kind": "address", "offered": [],
                               "answer": "wallet-b"}]
    assert (row["settled_by"], row["via"]) == (["wallet-b"], ["proxy:wallet-b"])


@pytest.mark.parametrize("stier", ["memory"], indirect=True)
async def test_an_open_prompt_still_times_out_after_a_selector_restart(stier: Any) -> None:
    """The deadline of a prompt held across a restart still fires (on the injected clock):
    the wake-up is unroutable with USER_TIMEOUT, once, and the page no longer offers it."""
    import aiohttp

    client = "carol-ex2"
    await stier.send("kessai.selector.commands", PurchaseCommand(
        "late-1", client, "shop-1", [["XXXX", 1]], scenario={"result_mode": "DIRECT_BOTH"}),
        client, "operator")
    prompt: Prompt = await stier.wait_for("kessai.selector.prompts", lambda m: isinstance(
        m, Prompt) and m.client_id == client)
    await open_prompt_page(stier.page_url, client, prompt.wakeup_id)
    await stier.restart_selector()
    await open_prompt_page(stier.page_url, client, prompt.wakeup_id)  # still open
    await stier.elapse(prompt.deadline_ms - stier.clock.now_ms() + 2_000)
    gone: UnroutableWakeup = await stier.wait_for("kessai.wakeups.unroutable", lambda m: (
        isinstance(m, UnroutableWakeup) and m.wakeup_id == prompt.wakeup_id))
    assert gone.reason == "USER_TIMEOUT"
    assert [m for m in stier.seen("kessai.wum.wakeups") if m.wakeup_id == prompt.wakeup_id] \
        == []
    async with aiohttp.ClientSession() as http, \
            http.get(f"{stier.page_url}/prompts", params={"client": client}) as r:
        assert 'id="none"' in await r.text()
