"""The one door, on the in-memory bus with the real agents' declarations."""

from __future__ import annotations

import pytest

from kessai import authenticators, crypto, keys
from kessai.errors import ConfigError
from kessai.handlers import Routes, actor_kind, admit
from kessai.membus import MemoryBus
from kessai.money import Money
from schemas.v1 import (
    DeadLetter,
    FirstRequest,
    LineItem,
    OrderContent,
    PaymentResult,
    ResultAck,
    SecondRequest,
)

CONTENT = OrderContent([LineItem("XXXX", "x", 1000, 1)], "JPY", 50, 1050)


@pytest.fixture
def bus(settlement_bus: MemoryBus) -> MemoryBus:
    return settlement_bus


async def purchase(bus: MemoryBus, order_id: str) -> None:
    key = authenticators.join_key("shop-1", order_id)
    reg = keys.load_registry(bus.settings.keys_dir)
    sealed = crypto.seal(reg.sealing["settlement"][1],
                         authenticators.pack_account("4012888888881881", "2029-03"),
                         authenticators.account_context(key))
    await bus.send("kessai.settlement.first",
                   FirstRequest("shop-1", order_id, order_id, Money(1050, "JPY"),
                                "VIA_TERMINAL", content=CONTENT), key, "shop-1")
    await bus.send("kessai.settlement.second",
                   SecondRequest("shop-1", order_id, "s", "carol", CONTENT, Money(1050, "JPY"),
                                 "channel", account_sealed=sealed), key, "terminal")
    await bus.drain()


def outcome(bus: MemoryBus, order_id: str) -> str | None:
    found = [m.outcome for m in bus.messages("kessai.payment-results", PaymentResult)
             if m.order_id == order_id]
    return found[-1] if found else None


@pytest.mark.parametrize("agent,topic", [("settlement", "kessai.settlement.second"),
                                         ("issuer", "kessai.authorizations")])
async def test_a_handler_exception_is_dead_lettered_and_the_next_record_handled(
        bus: MemoryBus, agent: str, topic: str) -> None:
    ctx = next(c for c in bus.contexts if c.name == agent)
    [route] = ctx.routes.on(topic)
    calls = {"n": 0}
    original = route.handler

    async def fails_once(inbound):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("card 4012888888881881 exploded")  # text must not leak
        await original(inbound)

    object.__setattr__(route, "handler", fails_once)
    await purchase(bus, "o-fail")
    dead = [m for m in bus.messages("kessai.dead-letters", DeadLetter) if m.topic == topic]
    assert len(dead) == 1 and dead[0].reason == "handler_failed" and dead[0].agent == agent
    assert dead[0].detail == "RuntimeError"  # a foreign exception's text is never quoted
    raw = next(r.value for r in bus.log[topic] if r.offset == dead[0].offset
               and r.partition == dead[0].partition)
    assert dead[0].original == raw  # the original bytes, exactly
    assert outcome(bus, "o-fail") is None
    await purchase(bus, "o-next")
    assert outcome(bus, "o-next") == "APPROVED"


async def test_undeclared_type_and_sender_are_dead_lettered(bus: MemoryBus) -> None:
    key = authenticators.join_key("shop-1", "o1")
    await bus.send("kessai.settlement.first", ResultAck("shop-1", "o1"), key, "shop-1")
    await bus.send("kessai.settlement.first",
                   FirstRequest("shop-1", "o1", "o1", Money(1050, "JPY"), "VIA_TERMINAL",
                                content=CONTENT), key, "terminal")
    await bus.drain()
    reasons = [m.reason for m in bus.messages("kessai.dead-letters", DeadLetter)]
    assert reasons == ["unexpected_type", "unauthorized_sender"]


async def test_sender_is_binds_the_identity(bus: MemoryBus) -> None:
    key = authenticators.join_key("shop-1", "o2")
    await bus.send("kessai.payment-results.acks", ResultAck("shop-1", "o2"), key, "shop-2")
    await bus.drain()
    [dead] = bus.messages("kessai.dead-letters", DeadLetter)
    assert dead.reason == "sender_mismatch"


def test_actor_kinds() -> None:
    assert [actor_kind(a) for a in ("shop-1", "wallet-a", "user:alice", "settlement")] == [
        "shop", "wallet", "user", "settlement"]


async def _noop(inbound) -> None:  # type: ignore[no-untyped-def]
    return None


def test_declarations_the_catalogue_does_not_allow_refuse_to_start() -> None:
    routes = Routes("settlement")
    routes.add("kessai.settlement.second", _noop, types=(SecondRequest,), senders=("shop",))
    with pytest.raises(ConfigError, match=r"kessai\.settlement\.second"):
        routes.check()
    reader = Routes("shop")
    reader.add("kessai.settlement.second", _noop, types=(SecondRequest,), senders=("terminal",))
    with pytest.raises(ConfigError, match=r"does not let shop read kessai\.settlement\.second"):
        reader.check()
    unknown = Routes("settlement")
    unknown.add("kessai.nowhere", _noop, types=(SecondRequest,), senders=("terminal",))
    with pytest.raises(ConfigError, match="not in the topic catalogue"):
        unknown.check()


def test_two_handlers_for_one_type_on_one_topic_are_refused() -> None:
    routes = Routes("settlement")
    routes.add("kessai.settlement.first", _noop, types=(FirstRequest,), senders=("shop",))
    with pytest.raises(ConfigError, match="two handlers"):
        routes.add("kessai.settlement.first", _noop, types=(FirstRequest,),
                   senders=("settlement",))


def test_admission_is_a_pure_decision() -> None:
    routes = Routes("settlement")
    route = routes.add("kessai.payment-results.acks", _noop, types=(ResultAck,),
                       senders=("shop",), sender_is="shop_id")
    assert admit(routes, "kessai.payment-results.acks", ResultAck("shop-1", "o"), "shop-1") \
        is route
    assert admit(routes, "kessai.other", ResultAck("shop-1", "o"), "shop-1").reason \
        == "unexpected_topic"
