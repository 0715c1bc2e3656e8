"""Seed 004 wired into the bus, written once and run on both tiers (tests/e2e/tiers.py): a
two-sided settlement (seed 003) whose payment request wakes carol, a user with two server
wallets, settles through the module her selector picked — on the in-memory bus and over real
worker processes on the throwaway broker. The development key set configures carol's selector
for Ex 1 (a stored pre-selection)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from kessai import envelope
from schemas.selector import HandedWakeup, Preselection, RoutingEvent, WalletSettled
from schemas.v1 import PaymentRequest, PaymentResult, PurchaseCommand
from tests.e2e.conftest import E2E_TIMINGS
from tests.e2e.tiers import BrokerTier, MemoryTier, Tier

AGENTS = ("shop", "settlement", "issuer", "selector", "wum", "serverwallet")


@pytest.fixture(params=["memory", "broker"])
async def tier(request: pytest.FixtureRequest, keys_dir, tmp_path) -> AsyncIterator[Tier]:  # type: ignore[no-untyped-def]
    from kessai.settings import Settings

    if request.param == "memory":
        t: MemoryTier | BrokerTier = MemoryTier(
            Settings(keys_dir=keys_dir, data_dir=tmp_path, **E2E_TIMINGS), AGENTS)
    else:
        t = BrokerTier(request.getfixturevalue("system").settings)
    try:
        yield t
    finally:
        await t.close()


async def test_a_two_wallet_user_settles_through_the_module_her_selector_picked(
        tier: Tier) -> None:
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
