"""The gaps docs/testing.md named after the first mutation runs, each a test that fails when
the behaviour breaks: the shop order DB's migration racing another worker, a settlement
redelivery tick at exactly the end of the history, a template that requires a group of items
and items left open inside a group, and an enrolment that carries no password hash."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from agents.relay.templates import MissingItem, check_required, extract, fill, parse_template
from agents.settlement import join
from agents.settlement.join import SendResult
from agents.shop.orders import _ADDED, _SCHEMA, OrderDB
from agents.wallet import checks
from kessai import authenticators, certificates, crypto, keys
from kessai.stores import SqliteDB
from protocols.sealed import wallet_enrol_context
from schemas.relay import AuthenticationInformation, Certificate
from sim import devkeys
from tests.recording import CLOCK
from tests.unit.test_settlement_join import KEY, P
from tests.unit.test_shop_orders import NOW, an_order, claim

# -- the shop order DB: two workers migrating one file at once --------------------------------


def _old_db(path: Path) -> None:
    """An order DB made before the columns of ``_ADDED`` existed."""
    schema = _SCHEMA
    for name, _ in _ADDED:
        schema = schema.replace(f"    {name}", f"    -- {name}", 1)
    with closing(sqlite3.connect(path)) as old:
        old.executescript(schema)
        assert not {n for n, _ in _ADDED} & {r[1] for r in old.execute(
            "PRAGMA table_info(orders)")}


async def _open_with(db: OrderDB, on_alter: Callable[[str], Any]) -> list[str]:
    """Open ``db`` with ``on_alter(sql)`` run before each ALTER its migration issues (it may
    return an awaitable to use instead); returns the ALTERs issued."""
    await SqliteDB.open(db)  # the connection, as ``OrderDB.open`` makes it first
    conn = db._conn
    assert conn is not None
    real, altered = conn.execute, []

    def execute(sql: str, *args: Any) -> Any:
        if sql.startswith("ALTER TABLE"):
            altered.append(sql)
            instead = on_alter(sql)
            if instead is not None:
                return instead
        return real(sql, *args)

    conn.execute = execute  # type: ignore[method-assign]
    await db.open()
    return altered


def _other_worker_migrates(path: Path) -> Callable[[str], None]:
    """Between this worker's look at the columns and its first ALTER, another worker adds
    every column (the race of two shop workers started on one data directory)."""
    done: list[bool] = []

    def migrate(_sql: str) -> None:
        if not done:
            done.append(True)
            with closing(sqlite3.connect(path, timeout=5)) as other:
                for name, decl in _ADDED:
                    other.execute(f"ALTER TABLE orders ADD COLUMN {name} {decl}")
                other.commit()
    return migrate


async def test_a_worker_whose_migration_another_worker_did_first_opens_and_works(
        tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    _old_db(path)
    db = OrderDB(path)
    try:
        altered = await _open_with(db, _other_worker_migrates(path))
        assert len(altered) == len(_ADDED)  # it saw the old schema, and each ALTER lost
        await db.add(an_order(trace_id="t-1", brands="visa"), NOW)
        assert await db.finalise("shop-1", "1234567890", "PAID", "APPROVED", by="m") is True
        order = await db.get("shop-1", "1234567890")
        assert order is not None and (order.trace_id, order.brands, order.status) == (
            "t-1", "visa", "PAID")
    finally:
        await db.close()


async def test_a_migration_failing_for_another_reason_than_the_race_is_not_swallowed(
        tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    _old_db(path)

    async def fails() -> None:
        raise aiosqlite.OperationalError("disk I/O error")

    db = OrderDB(path)
    try:
        with pytest.raises(aiosqlite.OperationalError, match="disk I/O"):
            await _open_with(db, lambda _sql: fails())
    finally:
        await db.close()


async def test_an_up_to_date_order_db_is_opened_without_altering_it(tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    async with OrderDB(path):
        pass
    db = OrderDB(path)
    try:
        assert await _open_with(db, lambda _sql: None) == []
    finally:
        await db.close()


# -- settlement: a redelivery tick at exactly the end of the history -------------------------

H = 1_700_000_500_000  # the end of the key's history


def _done_unacked(deliveries: int = 1) -> join.JoinState:
    """A direct result (DIRECT_BOTH) the shop has not acknowledged, its next redelivery due
    at the very end of its history (``redeliver_ms`` clipped to ``history_until_ms``)."""
    return join.JoinState(key=KEY, partition=2, status=join.DONE, outcome="APPROVED",
                          outcome_ms=H - P.t_history_ms, deadline_ms=H, history_until_ms=H,
                          shop_acked=False, deliveries=deliveries)


def test_a_redelivery_due_at_the_end_of_the_history_forgets_the_key_instead() -> None:
    assert join.on_tick(_done_unacked(), H, P) == join.Step(None)


def test_a_redelivery_due_a_millisecond_before_the_end_is_sent() -> None:
    step = join.on_tick(dataclasses.replace(_done_unacked(), deadline_ms=H - 1), H - 1, P)
    assert step.effects == [SendResult("shop")]
    assert step.state is not None and (step.state.deliveries, step.state.deadline_ms) == (2, H)


# -- relay templates: a required group of items, and items left open inside a group ----------

GROUPS = parse_template("confirming", "test", "#required: Item Total\n"
                        "&Item[&\n<li>&Product&</li>\n&]Item&\n<p>&Total&</p>")


def test_a_template_requiring_a_group_takes_a_group_with_an_element() -> None:
    items = {"Item": [{"Product": "Cola"}], "Total": "100"}
    check_required(GROUPS, items)
    assert fill(GROUPS, items) == "<li>Cola</li>\n<p>100</p>"


@pytest.mark.parametrize("group", [[], None, ""])
def test_a_template_requiring_a_group_refuses_an_empty_or_absent_group(group: Any) -> None:
    items = {"Total": "100"} if group is None else {"Item": group, "Total": "100"}
    with pytest.raises(MissingItem) as err:
        fill(GROUPS, items)
    assert err.value.missing == ("Item",)


def test_an_item_left_open_inside_a_group_is_dropped_and_the_group_still_closes() -> None:
    """``</Item>`` closes the ``<Item>`` two levels down, past the unclosed ``<Product>``."""
    assert extract("<Order><Item><Product>Cola</Item></Order>") == {
        "Order": [{"Item": "Cola"}]}
    assert extract("<Order><Item><Product>Cola</Item><Total>5</Total></Order>") == {
        "Order": [{"Item": "Cola", "Total": "5"}]}


# -- wallet: an enrolment without a password hash ---------------------------------------------

@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


def _enrolment(keydir: Path, extra: dict[str, str]) -> AuthenticationInformation:
    """What the CA sends wallet-b for erin's card (``agents.ca.agent``), with ``extra``."""
    registry = keys.load_registry(keydir)
    user_key = crypto.new_signing_key()
    cert = certificates.issue(keys.load_actor(keydir, "ca").signing_private, Certificate(
        "serial-1", "erin", "wallet-b", "visa", crypto.signing_public(user_key),
        CLOCK.now_ms() + 86_400_000))
    context = wallet_enrol_context("r-1")
    sealing = registry.sealing["wallet-b"][1]
    return AuthenticationInformation(
        "r-1", "wallet-b", cert,
        crypto.seal(sealing, authenticators.pack_account("4012888888881881", "2030-04"), context),
        crypto.seal(sealing, user_key, context), extra=extra)


@pytest.mark.parametrize("extra", [{}, {"password_salt": "00" * 16}, {"password_hash": "11" * 32}],
                         ids=["none", "salt-only", "hash-only"])
def test_an_enrolment_without_a_whole_password_hash_enrols_the_card_with_no_password(
        keydir: Path, extra: dict[str, str]) -> None:
    """A registration without a password (or a half of its hash) still stores the certified
    card; the user gets no password, so a login for them fails (``agents.wallet.agent``)."""
    msg = _enrolment(keydir, extra)
    user, card = checks.enrolment(msg, keys.load_registry(keydir),
                                  keys.load_actor(keydir, "wallet-b").seal_private,
                                  CLOCK.now_ms())
    assert (user.wallet_id, user.user_id, user.password_salt, user.password_hash) == (
        "wallet-b", "erin", None, None)
    assert (card.pan, card.expiry, card.brand, card.certificate) == (
        "4012888888881881", "2030-04", "visa", msg.certificate)


def test_an_enrolment_with_a_password_hash_keeps_it(keydir: Path) -> None:
    salt, digest = crypto.hash_password("erin-wallet-pw")
    msg = _enrolment(keydir, {"password_salt": salt.hex(), "password_hash": digest.hex()})
    user, _ = checks.enrolment(msg, keys.load_registry(keydir),
                               keys.load_actor(keydir, "wallet-b").seal_private, CLOCK.now_ms())
    assert (user.password_salt, user.password_hash) == (salt, digest)


async def test_a_claimed_inquiry_carries_the_order_as_the_claim_stored_it(tmp_path: Path) -> None:
    """The shop acts on the claimed copy (its count and next inquiry time), so it must be
    what the DB now holds, not the order as read before the claim."""
    async with OrderDB(tmp_path / "orders.sqlite") as db:
        await db.add(an_order(result_mode="SHOP_POLLS", next_poll_ms=NOW + 2000), NOW)
        [inquiry] = await claim(db, NOW + 2000)
        stored = await db.get("shop-1", "1234567890")
        assert stored is not None and stored.next_poll_ms == NOW + 4000
        assert inquiry.order == stored
