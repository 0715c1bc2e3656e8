"""The FI host's ledger: one decision per join key, at most one charge (spec R23, R25)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.issuer import rules
from agents.issuer.ledger import LazyLedger, Ledger, pan_hash
from agents.issuer.rules import Account, Decision
from kessai.errors import KessaiError
from kessai.money import Money

NOW = 1_700_000_000_000  # 2023-11-14 UTC
ALICE = Account("4111111111111111", "2031-12", 1_000_000, "JPY")
BOB = Account("5555555555554444", "2030-06", 2_000, "JPY")
EXPIRED = Account("4000000000000002", "2020-01", 1_000_000, "JPY")
ACCOUNTS = [ALICE, BOB, EXPIRED]


def yen(n: int) -> Money:
    return Money(n, "JPY")


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with await Ledger.open(tmp_path / "issuer.sqlite") as led:
        await led.seed(ACCOUNTS)
        yield led


async def test_seed_inserts_new_accounts_and_ignores_known_ones(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "issuer.sqlite") as led:
        assert await led.seed([ALICE, BOB]) == 2
        # A second seed (every worker start) must not reset a limit or drop history.
        raised = Account(BOB.pan, BOB.expiry, 9_999_999, "JPY")
        assert await led.seed([raised, EXPIRED]) == 1
        assert await led.balance(BOB.pan) == yen(2_000)
        assert await led.balance(EXPIRED.pan) == yen(1_000_000)


async def test_approval_reduces_the_available_limit(ledger: Ledger) -> None:
    d = await ledger.authorize("shop-1/1", ALICE.pan, ALICE.expiry, yen(1_155), NOW)
    assert d.approved is True and d.reason == rules.APPROVED and d.auth_code
    assert await ledger.balance(ALICE.pan) == yen(1_000_000 - 1_155)
    assert await ledger.charges_for("shop-1/1") == 1


async def test_limit_is_shared_across_orders_of_one_card(ledger: Ledger) -> None:
    first = await ledger.authorize("shop-1/1", BOB.pan, BOB.expiry, yen(1_500), NOW)
    second = await ledger.authorize("shop-1/2", BOB.pan, BOB.expiry, yen(600), NOW)
    third = await ledger.authorize("shop-2/1", BOB.pan, BOB.expiry, yen(500), NOW)
    assert first.approved is True
    assert second == Decision(False, rules.OVER_LIMIT)
    assert third.approved is True
    assert await ledger.balance(BOB.pan) == yen(0)


@pytest.mark.parametrize(("pan", "expiry", "amount", "reason"), [
    (None, None, yen(100), rules.UNREADABLE_ACCOUNT),
    ("4111111111111112", "2031-12", yen(100), rules.INVALID_ACCOUNT),
    (ALICE.pan, ALICE.expiry, yen(0), rules.INVALID_AMOUNT),
    ("6011111111111117", "2030-01", yen(100), rules.UNKNOWN_ACCOUNT),
    (ALICE.pan, "2030-12", yen(100), rules.EXPIRY_MISMATCH),
    (EXPIRED.pan, EXPIRED.expiry, yen(100), rules.EXPIRED_CARD),
    (ALICE.pan, ALICE.expiry, Money(100, "USD"), rules.CURRENCY_MISMATCH),
    (BOB.pan, BOB.expiry, yen(2_001), rules.OVER_LIMIT),
])
async def test_declines_are_stored_with_their_reason_and_charge_nothing(
        ledger: Ledger, pan: str | None, expiry: str | None, amount: Money,
        reason: str) -> None:
    before = {a.pan: await ledger.balance(a.pan) for a in ACCOUNTS}
    d = await ledger.authorize("shop-1/9", pan, expiry, amount, NOW)
    assert d == Decision(False, reason)
    assert await ledger.charges_for("shop-1/9") == 0
    assert {a.pan: await ledger.balance(a.pan) for a in ACCOUNTS} == before
    # Stored: asking again with a request that would now be approved changes nothing.
    again = await ledger.authorize("shop-1/9", ALICE.pan, ALICE.expiry, yen(100), NOW)
    assert again == Decision(False, reason)
    assert await ledger.charges_for("shop-1/9") == 0


async def test_same_join_key_twice_charges_once_and_answers_the_same(ledger: Ledger) -> None:
    first = await ledger.authorize("shop-1/7", ALICE.pan, ALICE.expiry, yen(5_000), NOW)
    second = await ledger.authorize("shop-1/7", ALICE.pan, ALICE.expiry, yen(5_000), NOW + 10_000)
    assert first.approved is True
    assert second == first
    assert await ledger.charges_for("shop-1/7") == 1
    assert await ledger.balance(ALICE.pan) == yen(1_000_000 - 5_000)


async def test_concurrent_requests_for_one_join_key_charge_once(ledger: Ledger) -> None:
    decisions = await asyncio.gather(*(
        ledger.authorize("shop-1/8", ALICE.pan, ALICE.expiry, yen(3_000), NOW + i)
        for i in range(10)))
    assert decisions[0].approved is True
    assert all(d == decisions[0] for d in decisions)
    assert await ledger.charges_for("shop-1/8") == 1
    assert await ledger.balance(ALICE.pan) == yen(1_000_000 - 3_000)


async def test_concurrent_orders_never_overdraw_the_limit(ledger: Ledger) -> None:
    # Five 500-yen orders race on a 2,000-yen limit: "used" must be read inside the same
    # transaction as the insert, or all five would see 0 used and be approved.
    decisions = await asyncio.gather(*(
        ledger.authorize(f"shop-1/{i}", BOB.pan, BOB.expiry, yen(500), NOW) for i in range(5)))
    assert sum(d.approved for d in decisions) == 4
    assert [d.reason for d in decisions if not d.approved] == [rules.OVER_LIMIT]
    assert await ledger.balance(BOB.pan) == yen(0)


async def test_two_connections_on_one_file_charge_once(tmp_path: Path) -> None:
    # Two worker processes on the same ledger file during a rebalance.
    path = tmp_path / "issuer.sqlite"
    async with await Ledger.open(path) as a, await Ledger.open(path) as b:
        await a.seed(ACCOUNTS)
        decisions = await asyncio.gather(*(
            led.authorize("shop-1/5", ALICE.pan, ALICE.expiry, yen(700), NOW)
            for led in (a, b, a, b)))
        assert decisions[0].approved is True
        assert all(d == decisions[0] for d in decisions)
        assert await a.charges_for("shop-1/5") == 1
        assert await b.balance(ALICE.pan) == yen(1_000_000 - 700)


async def test_repeat_with_another_amount_gets_the_stored_decision_and_no_charge(
        ledger: Ledger, caplog: pytest.LogCaptureFixture) -> None:
    first = await ledger.authorize("shop-1/3", ALICE.pan, ALICE.expiry, yen(1_000), NOW)
    with caplog.at_level(logging.WARNING, logger="kessai.issuer"):
        again = await ledger.authorize("shop-1/3", ALICE.pan, ALICE.expiry, yen(9_000), NOW)
    assert again == first
    assert await ledger.balance(ALICE.pan) == yen(1_000_000 - 1_000)
    assert "shop-1/3" in caplog.text
    assert ALICE.pan not in caplog.text


async def test_decisions_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "issuer.sqlite"
    async with await Ledger.open(path) as led:
        await led.seed(ACCOUNTS)
        first = await led.authorize("shop-1/4", ALICE.pan, ALICE.expiry, yen(2_500), NOW)
    async with await Ledger.open(path) as led:
        await led.seed(ACCOUNTS)
        again = await led.authorize("shop-1/4", ALICE.pan, ALICE.expiry, yen(2_500), NOW)
        assert again == first
        assert await led.charges_for("shop-1/4") == 1
        assert await led.balance(ALICE.pan) == yen(1_000_000 - 2_500)


async def test_amounts_are_stored_and_returned_as_integers(tmp_path: Path) -> None:
    path = tmp_path / "issuer.sqlite"
    async with await Ledger.open(path) as led:
        await led.seed(ACCOUNTS)
        await led.authorize("shop-1/6", ALICE.pan, ALICE.expiry, yen(1_155), NOW)
        available = await led.balance(ALICE.pan)
    assert available is not None and type(available.minor) is int
    with sqlite3.connect(path) as db:
        kinds = db.execute("SELECT typeof(amount_minor), typeof(decided_ms) FROM decisions "
                           "UNION SELECT typeof(limit_minor), 'integer' FROM accounts").fetchall()
    assert set(kinds) == {("integer", "integer")}


async def test_decisions_hold_the_card_hash_not_the_card_number(tmp_path: Path) -> None:
    path = tmp_path / "issuer.sqlite"
    async with await Ledger.open(path) as led:
        await led.seed(ACCOUNTS)
        await led.authorize("shop-1/2", ALICE.pan, ALICE.expiry, yen(100), NOW)
        await led.authorize("shop-1/3", None, None, yen(100), NOW)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT join_key, pan_hash FROM decisions ORDER BY join_key").fetchall()
        dump = "\n".join(str(r) for r in db.execute("SELECT * FROM decisions"))
    assert rows == [("shop-1/2", pan_hash(ALICE.pan)), ("shop-1/3", None)]
    assert ALICE.pan not in dump


async def test_balance_of_an_unknown_card_is_none(ledger: Ledger) -> None:
    assert await ledger.balance("6011111111111117") is None


async def test_lazy_ledger_opens_once_creates_its_directory_and_seeds(tmp_path: Path) -> None:
    handle = LazyLedger(tmp_path / "data" / "nested" / "issuer.sqlite", ACCOUNTS)
    opened = await asyncio.gather(*(handle.get() for _ in range(5)))
    try:
        assert all(led is opened[0] for led in opened)
        assert await opened[0].balance(BOB.pan) == yen(2_000)
        assert (tmp_path / "data" / "nested" / "issuer.sqlite").exists()
    finally:
        await handle.close()


async def test_lazy_ledger_refuses_to_reopen_after_close(tmp_path: Path) -> None:
    handle = LazyLedger(tmp_path / "issuer.sqlite", ACCOUNTS)
    await handle.get()
    await handle.close()
    with pytest.raises(KessaiError):
        await handle.get()
