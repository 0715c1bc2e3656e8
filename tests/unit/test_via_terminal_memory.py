"""Whole VIA_TERMINAL purchases through the real terminal, shop, settlement and issuer handlers
on the in-memory bus (real door, real crypto, injected clock): the think time is a durable
deadline of the terminal, and a shop that never hears from the terminal asks the settlement
server's result history and still ends PAID (issue 6 item 10)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents import AGENTS
from agents.shop.inquiries import PollPolicy
from agents.terminal import wallet
from kessai import envelope, keys
from kessai.authenticators import join_key
from kessai.clock import FakeClock
from kessai.membus import MemoryBus
from kessai.runtime import AgentContext
from kessai.settings import Settings
from kessai.worker import identities
from schemas.v1 import (
    InquiryAnswer,
    OrderRequest,
    OrderStatus,
    PaymentRequest,
    PaymentResult,
    PurchaseCommand,
    ResultInquiry,
    ResultRelay,
    SecondRequest,
)
from sim import devkeys
from sim.journey import new_session

COMMANDS = "kessai.terminal.commands"
ORDER_REQUESTS = "kessai.order-requests"
RELAYED = "kessai.payment-results.relayed"
ITEMS = [["XXXX", 1], ["YYYY", 1]]


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


def add(bus: MemoryBus, name: str) -> AgentContext:
    """One agent on the bus, hosting the identities its worker would (every shop of the key
    set for the shop)."""
    module = importlib.import_module(AGENTS[name])
    return bus.add(name, module.register, identities(module, bus.registry.signing))


@pytest.fixture
async def bus(keydir: Path, tmp_path: Path) -> AsyncIterator[MemoryBus]:
    b = MemoryBus(Settings(keys_dir=keydir, data_dir=tmp_path), FakeClock())
    for agent in ("settlement", "issuer", "shop", "terminal"):
        add(b, agent)
    yield b
    await b.stop()


async def elapse(bus: MemoryBus, ms: int, step: int = 500) -> None:
    for _ in range(0, ms, step):
        bus.clock.advance(step)  # type: ignore[attr-defined]
        await bus.tick()


async def buy(bus: MemoryBus, **kw: object) -> PurchaseCommand:
    fields: dict[str, object] = {"session": new_session(), "user_id": "alice",
                                 "shop_id": "shop-1", "items": ITEMS, **kw}
    cmd = PurchaseCommand(**fields)  # type: ignore[arg-type]
    await bus.send(COMMANDS, cmd, cmd.session, "operator")
    await bus.drain()
    return cmd


def traces(bus: MemoryBus) -> set[str]:
    """The trace ids on every record of the bus (one purchase: one trace, issue 6 item 6)."""
    return {envelope.decode(r.value).trace_id for records in bus.log.values() for r in records}


def statuses(bus: MemoryBus, session: str) -> list[str]:
    return [m.status for m in bus.messages("kessai.order-status", OrderStatus)
            if m.session == session]


async def test_the_think_time_is_kept_by_the_terminal_and_the_order_is_paid(
        bus: MemoryBus) -> None:
    cmd = await buy(bus, second_delay_ms=3_000)
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT"]
    assert bus.messages("kessai.settlement.second") == []
    await elapse(bus, 4_000)
    [second] = bus.messages("kessai.settlement.second", SecondRequest)
    assert second.session == cmd.session
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT", "PAID"]
    assert len(bus.messages("kessai.payment-results.relayed", ResultRelay)) == 1
    assert bus.messages("kessai.result-inquiries") == []  # relayed in time: no inquiry
    assert len(traces(bus)) == 1  # the durable think-time tick kept the purchase's trace


async def test_a_shop_the_terminal_never_tells_asks_the_history(keydir: Path,
                                                               tmp_path: Path) -> None:
    """A device that orders, pays and dies before the result comes back: no relay, ever."""
    bus = MemoryBus(Settings(keys_dir=keydir, data_dir=tmp_path), FakeClock())
    for agent in ("settlement", "issuer", "shop"):  # no terminal worker to relay anything
        add(bus, agent)
    try:
        session, trace = new_session(), envelope.new_trace_id()
        await bus.send(ORDER_REQUESTS, OrderRequest(session, "alice", "shop-1", ITEMS,
                                                    wallet.delivery_for("alice")),
                       session, "terminal", trace)
        await bus.drain()
        [request] = bus.messages("kessai.wakeups", PaymentRequest)
        device = keys.load_actor(keydir, "terminal")
        second = wallet.build_second_request(
            request, device.secrets["wallets"]["alice"], "main",
            keys.load_registry(keydir).sealing["settlement"][1])
        key = join_key(request.shop_id, request.order_id)
        await bus.send("kessai.settlement.second", second, key, "terminal", trace)
        await bus.drain()
        [result] = bus.messages("kessai.payment-results", PaymentResult)
        assert result.outcome == "APPROVED" and result.recipient == "user"
        assert statuses(bus, session) == ["AWAITING_PAYMENT"]

        await elapse(bus, PollPolicy().result_wait_ms - 500)
        assert bus.messages("kessai.result-inquiries") == []  # the relay may still come
        await elapse(bus, 500)
        [inquiry] = bus.messages("kessai.result-inquiries", ResultInquiry)
        assert inquiry.order_id == request.order_id
        [answer] = bus.messages("kessai.result-inquiries.answers", InquiryAnswer)
        assert (answer.outcome, answer.amount) == ("APPROVED", request.amount)
        assert statuses(bus, session) == ["AWAITING_PAYMENT", "PAID"]

        # A late relay (the device came back after all) changes nothing, and nobody asks again.
        await bus.send(RELAYED, wallet.relay_of(result), key, "terminal", trace)
        await elapse(bus, 120_000, step=1_000)
        assert statuses(bus, session) == ["AWAITING_PAYMENT", "PAID"]
        assert len(bus.messages("kessai.result-inquiries")) == 1
        assert traces(bus) == {trace}  # the timer's inquiry kept the purchase's trace
    finally:
        await bus.stop()
