"""Seed 003 end to end over the real broker and real worker processes: the acceptance
scenarios of spec §6.3 (numbers in the test names' docstrings)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid

import msgpack
import pytest

from kessai import authenticators, crypto, keys
from kessai.money import Money
from schemas.v1 import (
    AuditEvent,
    InquiryAnswer,
    LineItem,
    OrderContent,
    PaymentResult,
    ResultInquiry,
    SecondRequest,
)
from tests.e2e.bus import purchase, read_all, run, send, types, wait_for
from tests.e2e.conftest import System

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

FIG5 = OrderContent([LineItem("XXXX", "ピーナッツバター", 500, 1),
                     LineItem("YYYY", "グレープゼリー", 600, 1)], "JPY", 55, 1155)


@pytest.mark.parametrize("mode", ["VIA_TERMINAL", "DIRECT_BOTH", "SHOP_POLLS"])
async def test_happy_path_in_each_result_mode(system: System, mode: str) -> None:
    """(1) 1st then 2nd, approved, and the shop learns it the way its mode says."""
    [p] = await run(system.settings, purchase("alice", scenario={"result_mode": mode}))
    assert p.outcome == "APPROVED" and p.shop_status == "PAID"
    first = next(h for h in p.hops if h.type == "settlement-first")
    assert first.body["user_ref"] == "alice"  # cl. 50: the id names the order and the user
    seen = types(p)
    assert seen.index("settlement-first") < seen.index("payment-request") \
        < seen.index("settlement-second") < seen.index("authorization")
    if mode == "VIA_TERMINAL":
        assert "payment-result-relay" in seen
    if mode == "DIRECT_BOTH":
        recipients = [h.body["recipient"] for h in sorted(p.hops, key=lambda h: h.at_ms)
                      if h.type == "payment-result"]
        assert recipients[0] == "shop" and "user" in recipients
        assert "payment-result-ack" in seen
    if mode == "SHOP_POLLS":
        assert "result-inquiry" in seen and "result-inquiry-answer" in seen


@pytest.mark.parametrize("tamper", ["quantity", "amount"])
async def test_user_tampering_is_a_mismatch_and_never_reaches_the_issuer(
        system: System, tamper: str) -> None:
    """(3)(4) quantity and amount mismatches."""
    [p] = await run(system.settings, purchase("carol", user_tamper=tamper))
    assert p.outcome == "MISMATCH" and p.shop_status == "NOT_PAID"
    assert "authorization" not in types(p)


async def test_shop_overcharging_in_its_first_request_is_a_mismatch(system: System) -> None:
    """(4) R33: what the user saw is compared, not the stored 1st request."""
    [p] = await run(system.settings, purchase("carol", scenario={"shop_tamper": "amount"}))
    assert p.outcome == "MISMATCH"


async def test_hash_variant_matches_and_mismatches(system: System) -> None:
    """(5) the 1st request carries only the content hash."""
    ok, bad = await run(system.settings, purchase("carol", scenario={"hash": True}),
                        purchase("carol", scenario={"hash": True}, user_tamper="quantity"))
    first = next(h for h in ok.hops if h.type == "settlement-first")
    assert first.body["content"] is None and first.body["content_hash"]
    assert ok.outcome == "APPROVED" and bad.outcome == "MISMATCH"


async def test_lone_first_expires_and_the_shop_is_told(system: System) -> None:
    """(6) the user never confirms: EXPIRED without any new traffic."""
    [p] = await run(system.settings, purchase("alice", [["TEA1", 1]], abandon=True),
                    timeout=40)
    assert p.outcome == "EXPIRED" and p.shop_status == "NOT_PAID"
    assert "authorization" not in types(p)


async def test_lone_second_expires_and_its_account_is_purged(system: System) -> None:
    """(7) R8: the state keeps nothing of the account after expiry."""
    s = system.settings
    order_id = uuid.uuid4().hex[:10]
    key = authenticators.join_key("shop-2", order_id)
    reg = keys.load_registry(s.keys_dir)
    sealed = crypto.seal(reg.sealing["settlement"][1],
                         authenticators.pack_account("4012888888881881", "2029-03"),
                         authenticators.account_context(key))
    await send(s, "kessai.settlement.second",
               SecondRequest("shop-2", order_id, "sess-y", "carol", FIG5, Money(1155, "JPY"),
                             "channel", account_sealed=sealed), key, "terminal")
    result = await wait_for(s, "kessai.payment-results",
                            lambda m: isinstance(m, PaymentResult) and m.order_id == order_id,
                            timeout=30)
    assert result.outcome == "EXPIRED" and result.recipient == "user"
    # The state's changelog write and the result are produced by the same handler, in no
    # order: read until the changelog holds the expired state (or give up and show it).
    deadline = time.monotonic() + 15
    while True:
        changelog = [r for r in await read_all(s, "kessai-settlement-settlement-join-changelog")
                     if r.key == key.encode()]
        latest = msgpack.unpackb(changelog[-1].value) if changelog else {}
        if latest.get("outcome") == "EXPIRED" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert changelog, "the join state was written to its changelog"
    assert latest["outcome"] == "EXPIRED" and latest["second"]["account_sealed"] is None
    assert all(b"4012888888881881" not in (r.value or b"") for r in changelog)


async def test_duplicate_second_charges_once(system: System) -> None:
    """(8) the 2nd request sent twice: one FI charge, one outcome."""
    [p] = await run(system.settings, purchase("alice", [["XXXX", 2]], duplicate_second=True))
    assert p.outcome == "APPROVED"
    assert types(p).count("settlement-second") == 2
    assert types(p).count("authorization") == 1
    with sqlite3.connect(system.settings.data_dir / "issuer.sqlite") as db:
        key = next(i for i in p.ids if i.startswith("shop-1/") and "/ref:" not in i)
        assert db.execute("SELECT COUNT(*) FROM decisions WHERE join_key = ?",
                          (key,)).fetchone()[0] == 1


async def test_issuer_decline_is_declined(system: System) -> None:
    """(10) over bob's card limit."""
    [p] = await run(system.settings, purchase("bob", [["MUG1", 2]]))
    assert p.outcome == "DECLINED" and p.shop_status == "NOT_PAID"
    result = next(h for h in p.hops if h.type == "authorization-result")
    assert result.body["reason"] == "over_limit"


async def test_user_authentication_failures(system: System) -> None:
    """(11) forged signature authenticator, wrong password."""
    forged, wrong = await run(system.settings,
                              purchase("alice", forge_authenticator=True),
                              purchase("bob", [["XXXX", 1]], wrong_password=True))
    for p in (forged, wrong):
        assert p.outcome == "AUTH_FAILED" and "authorization" not in types(p)


async def test_forged_relayed_result_is_rejected_by_the_shop(system: System) -> None:
    """(12) a user relays a made-up APPROVED: the shop does not ship."""
    [p] = await run(system.settings, purchase("carol", forge_relay=True))
    assert p.shop_status == "RESULT_REJECTED"
    assert any(h.type == "audit-event" and h.body["kind"] == "forged-result" for h in p.hops)


async def test_server_assigned_order_id_acknowledged_before_the_payment_request(
        system: System) -> None:
    """(14) [0027]: no payment request before the settlement server's acceptance."""
    [p] = await run(system.settings, purchase("carol", scenario={"id_mode": "settlement"}))
    seen = types(p)
    assert p.outcome == "APPROVED" and p.shop_status == "PAID"
    assert seen.index("settlement-first-accepted") < seen.index("payment-request")
    assert p.report()["order_id"].startswith("S")


async def test_held_account_settles_without_account_info_in_the_request(
        system: System) -> None:
    """(15) cl. 15: dave's account is held by the settlement server."""
    [p] = await run(system.settings, purchase("dave"))
    second = next(h for h in p.hops if h.type == "settlement-second")
    assert second.body["account_sealed"] is None
    assert p.outcome == "APPROVED"


async def test_inquiry_about_another_shops_order_is_denied(system: System) -> None:
    """R30 / cl. 26: only the shop that owns an order may ask the history about it."""
    s = system.settings
    [p] = await run(s, purchase("carol", scenario={"result_mode": "SHOP_POLLS"}))
    assert p.outcome == "APPROVED"
    key = next(i for i in p.ids if i.startswith("shop-1/") and "/ref:" not in i)
    order_id = key.split("/", 1)[1]
    await send(s, "kessai.result-inquiries", ResultInquiry("shop-1", order_id), key, "shop-2")
    answer = await wait_for(s, "kessai.result-inquiries.answers",
                            lambda m: isinstance(m, InquiryAnswer) and m.order_id == order_id
                            and m.outcome == "DENIED")
    assert answer.amount is None
    event = await wait_for(s, "kessai.audit", lambda m: isinstance(m, AuditEvent)
                           and m.join_key == key and m.kind == "INQUIRY_DENIED")
    assert "shop-2" in event.detail


async def test_expired_card_is_declined_by_the_issuer(system: System) -> None:
    """cl. 2 / [0017]: the FI host checks the card itself."""
    [p] = await run(system.settings, purchase("alice", [["XXXX", 1]], card="expired"))
    assert p.outcome == "DECLINED"
    result = next(h for h in p.hops if h.type == "authorization-result")
    assert result.body["reason"] == "expired_card"
