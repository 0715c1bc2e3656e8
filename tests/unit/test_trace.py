"""One trace id per purchase, carried across every hop (issue 6, item 6)."""

from __future__ import annotations

from pathlib import Path

from kessai import authenticators, crypto, envelope, keys
from kessai.clock import FakeClock
from kessai.membus import MemoryBus
from kessai.money import Money
from schemas.v1 import FirstRequest, LineItem, OrderContent, SecondRequest

CONTENT = OrderContent([LineItem("XXXX", "x", 1000, 1)], "JPY", 50, 1050)


def traces(bus: MemoryBus, topic: str) -> list[str]:
    return [envelope.decode(r.value).trace_id for r in bus.log.get(topic, [])]


async def test_every_hop_of_a_purchase_carries_its_trace(
        keys_dir: Path, settlement_bus: MemoryBus) -> None:
    bus = settlement_bus
    key = authenticators.join_key("shop-1", "o1")
    sealed = crypto.seal(keys.load_registry(keys_dir).sealing["settlement"][1],
                         authenticators.pack_account("4012888888881881", "2029-03"),
                         authenticators.account_context(key))
    await bus.send("kessai.settlement.first",
                   FirstRequest("shop-1", "o1", "o1", Money(1050, "JPY"), "VIA_TERMINAL",
                                content=CONTENT), key, "shop-1", trace_id="t" * 32)
    await bus.send("kessai.settlement.second",
                   SecondRequest("shop-1", "o1", "s", "carol", CONTENT, Money(1050, "JPY"),
                                 "channel", account_sealed=sealed), key, "terminal",
                   trace_id="t" * 32)
    await bus.drain()
    for topic in ("kessai.authorizations", "kessai.authorization-results",
                  "kessai.payment-results"):
        assert traces(bus, topic) == ["t" * 32], topic


async def test_a_deadline_outcome_keeps_the_trace_of_its_order(
        settlement_bus: MemoryBus) -> None:
    """A timer acts outside any handler; the join state remembers the purchase's trace."""
    bus, clock = settlement_bus, settlement_bus.clock
    key = authenticators.join_key("shop-1", "o2")
    await bus.send("kessai.settlement.first",
                   FirstRequest("shop-1", "o2", "o2", Money(1050, "JPY"), "VIA_TERMINAL",
                                content=CONTENT), key, "shop-1", trace_id="e" * 32)
    await bus.drain()
    clock.advance(bus.settings.t_first_ms + 1)
    await bus.tick()
    assert [m.outcome for m in bus.messages("kessai.payment-results")] == ["EXPIRED"]
    assert traces(bus, "kessai.settlement.timers") == ["e" * 32]
    assert traces(bus, "kessai.payment-results") == ["e" * 32]


async def test_a_record_sent_outside_any_handler_starts_a_new_trace(keys_dir: Path) -> None:
    k = keys.load_actor(keys_dir, "shop-1")
    a = envelope.seal_envelope(FirstRequest("shop-1", "o", "o", Money(1, "JPY"),
                                            "VIA_TERMINAL", content=CONTENT), "c", k, FakeClock())
    b = envelope.seal_envelope(FirstRequest("shop-1", "o", "o", Money(1, "JPY"),
                                            "VIA_TERMINAL", content=CONTENT), "c", k, FakeClock())
    assert a.trace_id and b.trace_id and a.trace_id != b.trace_id
