"""`kessai pay` and `kessai demo` follow a purchase by its trace id (issue 6 item 6): the
command starts the trace, every record of the purchase carries it, and the watcher files
records by it alone — nothing learnt on the way (session → request reference → join key)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kessai import authenticators, envelope, keys
from kessai.clock import FakeClock
from kessai.membus import MemoryBus
from kessai.money import Money
from kessai.settings import Settings
from schemas.v1 import FirstRequest, LineItem, OrderContent, PurchaseCommand
from sim.journey import Hop, Purchase, file_hops
from tests.agents import agent_module

CONTENT = OrderContent([LineItem("XXXX", "x", 1000, 1)], "JPY", 50, 1050)


def hop(trace: str, key: str, body: dict[str, object] | None = None,
        type_: str = "authorization") -> Hop:
    return Hop(1, "kessai.payment-results", 0, 0, type_, "settlement", key, key, True,
               body or {}, trace)


def test_records_are_filed_by_their_trace_alone() -> None:
    a = Purchase("a", PurchaseCommand("sess-a", "alice", "shop-1", [["XXXX", 1]]))
    b = Purchase("b", PurchaseCommand("sess-b", "bob", "shop-1", [["XXXX", 1]]))
    assert a.trace_id != b.trace_id
    # keyed by a join key nobody told the watcher, but on a's trace: a's
    first = hop(a.trace_id, "shop-1/0001", {"shop_id": "shop-1", "order_id": "0001"})
    # keyed by a's session, but on b's trace: b's
    second = hop(b.trace_id, "sess-a")
    stranger = hop(envelope.new_trace_id(), "sess-a")
    rest = file_hops({a.trace_id: a, b.trace_id: b}, [first, second, stranger])
    assert a.hops == [first] and b.hops == [second] and rest == [stranger]
    assert a.join_key == "shop-1/0001" and a.report()["trace_id"] == a.trace_id
    assert a.ids == {"sess-a", "shop-1/0001"}


async def test_a_dead_letter_carries_the_trace_of_the_record_it_holds(
        keys_dir: Path, tmp_path: Path) -> None:
    bus = MemoryBus(Settings(keys_dir=keys_dir, data_dir=tmp_path), FakeClock())
    bus.add_module("settlement", agent_module("settlement"))
    key = authenticators.join_key("shop-1", "o1")
    env = envelope.seal_envelope(
        FirstRequest("shop-1", "o1", "o1", Money(1050, "JPY"), "VIA_TERMINAL",
                     content=CONTENT),
        key, keys.load_actor(keys_dir, "shop-1"), bus.clock, "t" * 32)
    forged = dataclasses.replace(env, signature=bytes(64))
    bus.append("kessai.settlement.first", key.encode(), envelope.encode(forged))
    await bus.drain()
    [dead] = bus.log["kessai.dead-letters"]
    assert envelope.decode(dead.value).trace_id == "t" * 32
    assert dict(dead.headers)[envelope.HEADER_TRACE] == b"t" * 32
