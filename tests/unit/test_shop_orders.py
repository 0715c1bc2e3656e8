"""The shop's order DB records a final status once, and the shop pays only on a verified
result (seed 003 cl. 7/19, spec R28)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from agents.shop.inquiries import Inquiry, PollPolicy, plan
from agents.shop.orders import _SCHEMA, AWAITING_PAYMENT, PENDING_ACK, Order, OrderDB
from agents.shop.pricing import price
from agents.shop.results import judge_answer, judge_result
from kessai import authenticators, crypto
from kessai.money import Money
from sim.devdata import Catalogue

NOW = 1_700_000_000_000
CONTENT = price([["XXXX", 1], ["YYYY", 1]], Catalogue().items)


def an_order(ref: str = "1234567890", **changes: object) -> Order:
    order = Order(shop_id="shop-1", request_ref=ref, order_id=ref, session="s-1",
                  user_id="alice", result_mode="VIA_TERMINAL", content=CONTENT,
                  amount=CONTENT.amount, status=AWAITING_PAYMENT)
    return replace(order, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[OrderDB]:
    async with OrderDB(tmp_path / "data" / "shop.sqlite") as opened:
        yield opened


async def test_order_round_trips(db: OrderDB) -> None:
    stored = await db.add(an_order(), NOW)
    assert stored == replace(an_order(), created_ms=NOW)
    assert await db.get("shop-1", "1234567890") == stored
    assert await db.get("shop-2", "1234567890") is None  # join keys carry the shop (R1)


async def test_adding_an_order_again_keeps_the_stored_one(db: OrderDB) -> None:
    await db.add(an_order(), NOW)
    again = await db.add(an_order(session="other", amount=Money(1, "JPY")), NOW)
    assert again.session == "s-1" and again.amount == CONTENT.amount


async def test_a_taken_reference_or_id_is_told_apart_from_a_redelivery(db: OrderDB) -> None:
    await db.add(an_order(source_id="msg-a"), NOW)
    clash = await db.add(an_order(source_id="msg-b", session="s-2"), NOW)
    assert clash is not None and clash.source_id == "msg-a"  # the caller tries another id
    # A settlement-assigned id equal to a new shop-assigned one: no row, try another id.
    await db.add(an_order("ref-9", order_id="", status=PENDING_ACK, shop_assigned=False,
                          source_id="msg-c"), NOW)
    await db.assign("shop-1", "ref-9", "5555555555", None)
    assert await db.add(an_order("5555555555", source_id="msg-d"), NOW) is None


async def test_final_status_is_set_once(db: OrderDB) -> None:
    await db.add(an_order(), NOW)
    assert await db.finalise("shop-1", "1234567890", "PAID", "APPROVED") is True
    # A duplicate, or a later contradicting result, neither changes nor re-announces it.
    assert await db.finalise("shop-1", "1234567890", "PAID", "APPROVED") is False
    assert await db.finalise("shop-1", "1234567890", "NOT_PAID", "DECLINED") is False
    order = await db.get("shop-1", "1234567890")
    assert order is not None and (order.status, order.outcome) == ("PAID", "APPROVED")
    assert order.final


async def test_final_status_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    async with OrderDB(path) as db:
        await db.add(an_order(), NOW)
        await db.finalise("shop-1", "1234567890", "NOT_PAID", "MISMATCH")
    async with OrderDB(path) as db:
        assert await db.finalise("shop-1", "1234567890", "PAID", "APPROVED") is False
        order = await db.get("shop-1", "1234567890")
        assert order is not None and order.status == "NOT_PAID"


async def test_unknown_order_is_not_finalised(db: OrderDB) -> None:
    assert await db.finalise("shop-1", "0000000000", "PAID", "APPROVED") is False


async def test_only_final_statuses_are_recorded(db: OrderDB) -> None:
    await db.add(an_order(), NOW)
    with pytest.raises(ValueError):
        await db.finalise("shop-1", "1234567890", "RESULT_REJECTED", "APPROVED")


async def test_settlement_assigned_id_is_taken_once(db: OrderDB) -> None:
    await db.add(an_order("ref-1", order_id="", status=PENDING_ACK, shop_assigned=False), NOW)
    assert await db.get("shop-1", "") is None
    assert await db.finalise("shop-1", "", "PAID", "APPROVED") is False  # no id, no result
    first = await db.assign("shop-1", "ref-1", "S-000001", None)
    assert first is not None and (first.order_id, first.status) == ("S-000001",
                                                                     AWAITING_PAYMENT)
    again = await db.assign("shop-1", "ref-1", "S-999999", None)
    assert again is not None and again.order_id == "S-000001"
    assert await db.get("shop-1", "S-000001") == first
    assert await db.assign("shop-1", "ref-unknown", "S-1", None) is None


POLICY = PollPolicy(delay_ms=2000, limit=3, result_wait_ms=5000, max_delay_ms=8000,
                    give_up_ms=60_000)


async def claim(db: OrderDB, now: int) -> list[Inquiry[Order]]:
    """What the shop's timer does: read the due orders, plan, claim."""
    return await db.claim_inquiries(plan(await db.due_inquiries(now), now, POLICY))


async def test_polls_are_claimed_when_due_and_stop_at_the_limit(db: OrderDB) -> None:
    await db.add(an_order(result_mode="SHOP_POLLS", next_poll_ms=NOW + 2000), NOW)
    await db.add(an_order("2222222222"), NOW)  # no inquiry deadline: never asked about
    assert await claim(db, NOW + 1999) == []
    claimed = await claim(db, NOW + 2000)
    assert [(i.order.order_id, i.order.polls, i.next_poll_ms) for i in claimed] == [
        ("1234567890", 1, NOW + 4000)]
    assert await claim(db, NOW + 2000) == []  # claimed once per due time
    assert len(await claim(db, NOW + 4000)) == 1
    last = await claim(db, NOW + 6000)
    assert [(i.order.polls, i.next_poll_ms) for i in last] == [(3, None)]
    assert await claim(db, NOW + 99_000) == []


async def test_via_terminal_inquiries_back_off_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    async with OrderDB(path) as db:
        await db.add(an_order(next_poll_ms=NOW + 5000), NOW)
        assert await claim(db, NOW + 4999) == []
        [first] = await claim(db, NOW + 5000)
        assert first.next_poll_ms == NOW + 7000
    async with OrderDB(path) as db:  # a restarted worker finds the deadline where it was
        assert await claim(db, NOW + 6999) == []
        [second] = await claim(db, NOW + 7000)
        assert second.next_poll_ms == NOW + 7000 + 4000


async def test_a_due_inquiry_is_claimed_by_one_worker_only(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    async with OrderDB(path) as one, OrderDB(path) as other:
        await one.add(an_order(next_poll_ms=NOW), NOW)
        planned = plan(await one.due_inquiries(NOW), NOW, POLICY)
        assert planned == plan(await other.due_inquiries(NOW), NOW, POLICY)
        assert len(await one.claim_inquiries(planned)) == 1
        assert await other.claim_inquiries(planned) == []


async def test_a_final_order_is_no_longer_polled(db: OrderDB) -> None:
    await db.add(an_order(result_mode="SHOP_POLLS", next_poll_ms=NOW), NOW)
    await db.finalise("shop-1", "1234567890", "PAID", "APPROVED")
    assert await claim(db, NOW + 10_000) == []


async def test_the_record_that_made_an_order_final_announces_it_again(db: OrderDB) -> None:
    """A redelivery after a crash may come after the DB write but before the announcement
    reached the broker: the very same record announces again; any other does not."""
    await db.add(an_order(), NOW)
    assert await db.finalise("shop-1", "1234567890", "PAID", "APPROVED", by="msg-1") is True
    assert await db.finalise("shop-1", "1234567890", "PAID", "APPROVED", by="msg-1") is True
    assert await db.finalise("shop-1", "1234567890", "PAID", "APPROVED", by="msg-2") is False
    assert await db.finalise("shop-1", "1234567890", "NOT_PAID", "DECLINED",
                             by="msg-1") is False


async def test_an_order_db_from_before_the_added_columns_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as old:
        old.executescript(_SCHEMA.replace("    trace_id     TEXT NOT NULL DEFAULT '',\n", "")
                          .replace("    final_by     TEXT NOT NULL DEFAULT '',\n", ""))
        assert {"trace_id", "final_by"}.isdisjoint(
            row[1] for row in old.execute("PRAGMA table_info(orders)"))
    async with OrderDB(path) as db:
        await db.add(an_order(trace_id="t-1"), NOW)
        assert await db.finalise("shop-1", "1234567890", "PAID", "APPROVED", by="m") is True
        order = await db.get("shop-1", "1234567890")
        assert order is not None and order.trace_id == "t-1" and order.status == "PAID"


KEY = crypto.new_secret()
AMOUNT = Money(1155, "JPY")


def tag(outcome: str = "APPROVED", amount: Money = AMOUNT, key: bytes = KEY,
        order_id: str = "1234567890") -> bytes:
    return authenticators.shop_authenticator(key, "shop-1", order_id, outcome, amount)


def test_authentic_approval_pays() -> None:
    v = judge_result(KEY, "shop-1", "1234567890", AMOUNT, "APPROVED", AMOUNT, tag())
    assert v.status == "PAID" and v.final


@pytest.mark.parametrize("outcome", ["DECLINED", "MISMATCH", "AUTH_FAILED", "EXPIRED"])
def test_authentic_refusal_does_not_pay(outcome: str) -> None:
    v = judge_result(KEY, "shop-1", "1234567890", AMOUNT, outcome, AMOUNT, tag(outcome))
    assert v.status == "NOT_PAID" and v.final


def test_forged_results_are_rejected() -> None:
    forged = [
        ("APPROVED", AMOUNT, crypto.new_secret(32)),  # a made-up authenticator (R28)
        ("APPROVED", AMOUNT, tag("DECLINED")),  # a refusal's tag on an approval
        ("APPROVED", AMOUNT, tag(key=crypto.new_secret())),  # another key
        ("APPROVED", AMOUNT, tag(order_id="9999999999")),  # another order's tag
        ("APPROVED", AMOUNT, b""),
    ]
    for outcome, amount, t in forged:
        v = judge_result(KEY, "shop-1", "1234567890", AMOUNT, outcome, amount, t)
        assert v.status == "RESULT_REJECTED" and not v.final


def test_authentic_result_for_another_amount_is_rejected() -> None:
    other = Money(1000, "JPY")
    v = judge_result(KEY, "shop-1", "1234567890", AMOUNT, "APPROVED", other,
                     tag(amount=other))
    assert v.status == "RESULT_REJECTED"


def test_inquiry_answers() -> None:
    def status(outcome: str, amount: Money | None) -> str | None:
        verdict = judge_answer(AMOUNT, outcome, amount)
        return verdict.status if verdict is not None else None

    assert status("APPROVED", AMOUNT) == "PAID"
    assert status("DECLINED", None) == "NOT_PAID"
    assert status("EXPIRED", AMOUNT) == "NOT_PAID"
    assert status("APPROVED", Money(1, "JPY")) == "RESULT_REJECTED"
    for no_result in ("UNKNOWN_OR_EXPIRED", "PENDING", "DENIED"):
        assert status(no_result, None) is None  # ask again later


def test_a_users_session_with_an_order_places_that_order_again() -> None:
    from agents.shop.orders import placing_source

    earlier = an_order(user_id="alice", source_id="m-1")
    assert placing_source("m-2", earlier, "alice") == "m-1"
    assert placing_source("m-2", earlier, "bob") == "m-2"  # another user's session string
    assert placing_source("m-2", None, "alice") == "m-2"
