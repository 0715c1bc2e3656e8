"""Settlement scenarios written once, run on the in-memory bus and on the real broker.

The in-memory tier runs the real settlement and issuer handlers behind the real door (signed
envelopes, catalogue-checked declarations) with an injected clock; the broker tier runs every
agent as its own worker process. Both must show the same behaviour.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from kessai import authenticators, crypto, keys
from kessai.money import Money
from schemas.v1 import (
    AuditEvent,
    DeadLetter,
    FirstRequest,
    LineItem,
    OrderContent,
    PaymentResult,
    SecondRequest,
)
from tests.e2e.conftest import E2E_TIMINGS
from tests.e2e.tiers import BrokerTier, MemoryTier, Tier, wait_for_after

pytestmark = [pytest.mark.e2e]

FIG5 = OrderContent([LineItem("XXXX", "ピーナッツバター", 500, 1),
                     LineItem("YYYY", "グレープゼリー", 600, 1)], "JPY", 55, 1155)
CARD = ("4012888888881881", "2029-03")


@pytest.fixture(params=["memory", "broker"])
async def tier(request: pytest.FixtureRequest, keys_dir, tmp_path) -> AsyncIterator[Tier]:
    from kessai.settings import Settings

    if request.param == "memory":
        t: MemoryTier | BrokerTier = MemoryTier(
            Settings(keys_dir=keys_dir, data_dir=tmp_path, **E2E_TIMINGS),
            ("settlement", "issuer"))
    else:
        request.applymarker(pytest.mark.broker)
        t = BrokerTier(request.getfixturevalue("system").settings)
    try:
        yield t
    finally:
        await t.close()


def sealed_card(tier: Tier, key: str) -> bytes:
    reg = keys.load_registry(tier.settings.keys_dir)
    return crypto.seal(reg.sealing["settlement"][1], authenticators.pack_account(*CARD),
                       authenticators.account_context(key))


def first(shop: str, order_id: str, content: OrderContent = FIG5) -> FirstRequest:
    return FirstRequest(shop, order_id, order_id, Money(content.total, "JPY"), "VIA_TERMINAL",
                        content=content)


def second(tier: Tier, shop: str, order_id: str, session: str = "sess") -> SecondRequest:
    key = authenticators.join_key(shop, order_id)
    return SecondRequest(shop, order_id, session, "carol", FIG5, Money(1155, "JPY"), "channel",
                         account_sealed=sealed_card(tier, key))


def result_for(order_id: str, shop: str | None = None):  # type: ignore[no-untyped-def]
    return lambda m: (isinstance(m, PaymentResult) and m.order_id == order_id
                      and (shop is None or m.shop_id == shop))


async def test_second_before_first_still_settles(tier: Tier) -> None:
    """(2) 2nd then 1st: the join waits for its partner."""
    order_id = uuid.uuid4().hex[:10]
    key = authenticators.join_key("shop-1", order_id)
    await tier.send("kessai.settlement.second", second(tier, "shop-1", order_id), key,
                    "terminal")
    await tier.elapse(1000)
    await tier.send("kessai.settlement.first", first("shop-1", order_id), key, "shop-1")
    result = await tier.wait_for("kessai.payment-results", result_for(order_id))
    assert result.outcome == "APPROVED"


async def test_lone_second_expires(tier: Tier) -> None:
    """(7) R7: a 2nd request whose 1st never comes ends EXPIRED, told to the user."""
    order_id = uuid.uuid4().hex[:10]
    key = authenticators.join_key("shop-2", order_id)
    await tier.send("kessai.settlement.second", second(tier, "shop-2", order_id), key,
                    "terminal")
    result = await wait_for_after(tier, E2E_TIMINGS["t_second_ms"] + 3000,
                                  "kessai.payment-results", result_for(order_id), timeout=30)
    assert result.outcome == "EXPIRED" and result.recipient == "user"


async def test_conflicting_first_is_audited_and_the_original_kept(tier: Tier) -> None:
    """(9) a 1st request resent with another amount while pending."""
    order_id = uuid.uuid4().hex[:10]
    key = authenticators.join_key("shop-1", order_id)
    for amount in (1155, 2000):
        content = OrderContent(FIG5.items, "JPY", 55, amount)
        await tier.send("kessai.settlement.first", first("shop-1", order_id, content), key,
                        "shop-1")
    event = await tier.wait_for("kessai.audit", lambda m: isinstance(m, AuditEvent)
                                and m.join_key == key and m.kind == "DUPLICATE_CONFLICT")
    assert "original is kept" in event.detail


async def test_same_order_id_at_two_shops_never_cross_matches(tier: Tier) -> None:
    """(13) R1: the join key is shop id + order id."""
    order_id = uuid.uuid4().hex[:10]
    small = OrderContent([LineItem("XXXX", "ピーナッツバター", 500, 1)], "JPY", 25, 525)
    await tier.send("kessai.settlement.first", first("shop-1", order_id, small),
                    authenticators.join_key("shop-1", order_id), "shop-1")
    key2 = authenticators.join_key("shop-2", order_id)
    await tier.send("kessai.settlement.first", first("shop-2", order_id), key2, "shop-2")
    await tier.send("kessai.settlement.second", second(tier, "shop-2", order_id), key2,
                    "terminal")
    result = await tier.wait_for("kessai.payment-results", result_for(order_id, "shop-2"))
    assert result.outcome == "APPROVED"


async def test_a_shop_cannot_send_a_first_request_as_another_shop(tier: Tier) -> None:
    """R5: the shop id must be the signer."""
    order_id = uuid.uuid4().hex[:10]
    key = authenticators.join_key("shop-1", order_id)
    await tier.send("kessai.settlement.first", first("shop-1", order_id), key, "shop-2")
    event = await tier.wait_for("kessai.audit", lambda m: isinstance(m, AuditEvent)
                                and m.join_key == key and m.kind == "SHOP_IDENTITY")
    assert "shop-2" in event.detail


async def test_channel_method_refuses_a_second_request_from_a_non_terminal(tier: Tier) -> None:
    """(11) the authenticatable channel: only a terminal principal may speak for carol.

    The door refuses a 2nd request a shop signed before it reaches the join (a dead letter),
    so it can neither settle the order nor end another shop's order early: it expires."""
    order_id = uuid.uuid4().hex[:10]
    key = authenticators.join_key("shop-1", order_id)
    await tier.send("kessai.settlement.first", first("shop-1", order_id), key, "shop-1")
    await tier.send("kessai.settlement.second", second(tier, "shop-1", order_id), key, "shop-2")
    dead = await tier.wait_for("kessai.dead-letters", lambda m: isinstance(m, DeadLetter)
                               and m.topic == "kessai.settlement.second"
                               and order_id.encode() in m.original)
    assert dead.reason == "unauthorized_sender" and dead.agent == "settlement"
    result = await wait_for_after(tier, E2E_TIMINGS["t_first_ms"] + 3000,  # the lone 1st
                                  "kessai.payment-results", result_for(order_id))  # lifetime
    assert result.outcome == "EXPIRED"
