"""Seed 003 claims proven at the level of the component they are about: the real settlement,
issuer, shop and terminal handlers on the in-memory bus (real door, real crypto, injected
clock). Where a party must misbehave (a settlement result with a bad authenticator, bob signing
for alice, a terminal posing as the settlement server), the test signs that record itself as
that party; everything else is the agents' own traffic.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents import AGENTS
from agents.issuer.ledger import Ledger
from agents.terminal import wallet
from kessai import authenticators, crypto, keys
from kessai.authenticators import join_key
from kessai.clock import FakeClock
from kessai.membus import MemoryBus
from kessai.settings import Settings
from kessai.worker import identities
from schemas.v1 import (
    AuditEvent,
    Authorization,
    DeadLetter,
    DeadlineTick,
    InquiryAnswer,
    OrderStatus,
    PaymentRequest,
    PaymentResult,
    PurchaseCommand,
    ResultRelay,
    SecondRequest,
)
from sim import devkeys
from sim.journey import new_session

COMMANDS = "kessai.terminal.commands"
SECOND = "kessai.settlement.second"
RESULTS = "kessai.payment-results"
RELAYED = "kessai.payment-results.relayed"
ANSWERS = "kessai.result-inquiries.answers"
ITEMS = [["XXXX", 1], ["YYYY", 1]]
TIMINGS = {"t_first_ms": 12_000, "t_second_ms": 5_000, "t_authorize_ms": 3_000,
           "result_redelivery_ms": 1_500}
LATER = 600_000  # the user's think time when a test speaks for the user itself


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


def make_bus(keydir: Path, data: Path, *agents: str) -> MemoryBus:
    bus = MemoryBus(Settings(keys_dir=keydir, data_dir=data, **TIMINGS), FakeClock())
    for name in agents:
        module = importlib.import_module(AGENTS[name])
        bus.add(name, module.register, identities(module, bus.registry.signing))
    return bus


@pytest.fixture
async def bus(keydir: Path, tmp_path: Path) -> AsyncIterator[MemoryBus]:
    b = make_bus(keydir, tmp_path, "settlement", "issuer", "shop", "terminal")
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
async def no_settlement(keydir: Path, tmp_path: Path) -> AsyncIterator[MemoryBus]:
    """Shop and terminal only: the test speaks for the settlement server (or poses as it)."""
    b = make_bus(keydir, tmp_path, "shop", "terminal")
    await b.start()
    yield b
    await b.stop()


def secrets(keydir: Path, actor: str) -> dict[str, Any]:
    return dict(keys.load_actor(keydir, actor).secrets)


async def buy(bus: MemoryBus, user: str = "alice", mode: str = "VIA_TERMINAL",
              **kw: Any) -> tuple[PurchaseCommand, PaymentRequest]:
    cmd = PurchaseCommand(session=new_session(), user_id=user, shop_id="shop-1", items=ITEMS,
                          scenario={"result_mode": mode}, **kw)
    await bus.send(COMMANDS, cmd, cmd.session, "operator")
    await bus.drain()
    [request] = [r for r in bus.messages("kessai.wakeups", PaymentRequest)
                 if r.session == cmd.session]
    return cmd, request


async def elapse(bus: MemoryBus, ms: int, step: int = 500) -> None:
    for _ in range(0, ms, step):
        bus.clock.advance(step)  # type: ignore[attr-defined]
        await bus.tick()


def statuses(bus: MemoryBus, session: str) -> list[str]:
    return [m.status for m in bus.messages("kessai.order-status", OrderStatus)
            if m.session == session]


def audits(bus: MemoryBus, kind: str) -> list[AuditEvent]:
    return [a for a in bus.messages("kessai.audit", AuditEvent) if a.kind == kind]


def dead_letters(bus: MemoryBus, topic: str) -> list[DeadLetter]:
    return [d for d in bus.messages("kessai.dead-letters", DeadLetter) if d.topic == topic]


def user_results(bus: MemoryBus, order_id: str) -> list[PaymentResult]:
    return [r for r in bus.messages(RESULTS, PaymentResult)
            if r.order_id == order_id and r.recipient == "user"]


def settlement_result(keydir: Path, request: PaymentRequest, outcome: str = "APPROVED", *,
                      recipient: str = "user", mode: str = "VIA_TERMINAL",
                      user_tag: bytes | None = None) -> PaymentResult:
    """A result as the settlement server makes it, with both authenticators right unless
    ``user_tag`` replaces the user's."""
    s = secrets(keydir, "settlement")
    shop_key = bytes.fromhex(s["shop_mac"][request.shop_id])
    user_key = bytes.fromhex(s["user_mac"][request.user_id])
    tag = authenticators.user_authenticator(user_key, request.shop_id, request.order_id,
                                            outcome, request.amount, request.session)
    return PaymentResult(
        request.shop_id, request.order_id, request.session, recipient,  # type: ignore[arg-type]
        outcome, request.amount, mode,  # type: ignore[arg-type]
        authenticators.shop_authenticator(shop_key, request.shop_id, request.order_id,
                                          outcome, request.amount),
        tag if user_tag is None else user_tag)


def second_for(keydir: Path, request: PaymentRequest, user: str, **wallet_changes: Any
               ) -> SecondRequest:
    """The honest 2nd request of ``user``'s device for ``request``, built from a (possibly
    altered) copy of that user's wallet."""
    user_wallet = {**secrets(keydir, "terminal")["wallets"][user], **wallet_changes}
    return wallet.build_second_request(request, user_wallet, "main",
                                       keys.load_registry(keydir).sealing["settlement"][1])


# -- cl. 11 / 28 / 40: the settlement authenticator on the user's result --------------------

async def test_settlement_puts_on_the_user_result_an_authenticator_the_users_key_verifies(
        bus: MemoryBus, keydir: Path) -> None:
    cmd, request = await buy(bus)
    [result] = user_results(bus, request.order_id)
    assert result.outcome == "APPROVED" and result.user_authenticator
    user_key = bytes.fromhex(secrets(keydir, "settlement")["user_mac"]["alice"])
    assert authenticators.user_authenticator_ok(
        user_key, result.shop_id, result.order_id, result.outcome, result.amount,
        result.session, result.user_authenticator)
    # ... and the user's device took it: relayed once, no refusal.
    assert len(bus.messages(RELAYED, ResultRelay)) == 1
    assert audits(bus, "bad-result-authenticator") == []
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT", "PAID"]


@pytest.mark.parametrize("tag", [b"", b"\x00" * 32], ids=["missing", "forged"])
async def test_the_terminal_refuses_a_result_whose_settlement_authenticator_fails(
        no_settlement: MemoryBus, keydir: Path, tag: bytes,
        caplog: pytest.LogCaptureFixture) -> None:
    bus = no_settlement
    cmd, request = await buy(bus)
    key = join_key(request.shop_id, request.order_id)
    assert [s.session for s in bus.messages(SECOND, SecondRequest)] == [cmd.session]
    with caplog.at_level(logging.INFO, logger="kessai.terminal"):
        await bus.send(RESULTS, settlement_result(keydir, request, user_tag=tag), key,
                       "settlement")
        await bus.drain()
    assert bus.messages(RELAYED) == []  # not taken as the result, not relayed to the shop
    [audit] = audits(bus, "bad-result-authenticator")
    assert audit.join_key == key
    told = [r.getMessage() for r in caplog.records if "tells the user" in r.getMessage()]
    assert len(told) == 1 and "could not be verified" in told[0]
    assert "APPROVED" not in " ".join(r.getMessage() for r in caplog.records)
    # The authentic copy (a redelivery, say) is still taken.
    await bus.send(RESULTS, settlement_result(keydir, request), key, "settlement")
    await bus.drain()
    assert len(bus.messages(RELAYED, ResultRelay)) == 1
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT", "PAID"]


# -- cl. 7 / 24 / 36: the shop authenticator the settlement server makes --------------------

async def test_settlement_puts_on_results_the_shop_authenticator_the_shop_verifies(
        bus: MemoryBus, keydir: Path) -> None:
    cmd, request = await buy(bus, mode="DIRECT_BOTH")
    results = [r for r in bus.messages(RESULTS, PaymentResult) if r.order_id == request.order_id]
    assert {r.recipient for r in results} == {"shop", "user"}
    shop_key = bytes.fromhex(secrets(keydir, "shop-1")["settlement_mac"])
    for r in results:
        assert authenticators.shop_authenticator_ok(shop_key, r.shop_id, r.order_id,
                                                    r.outcome, r.amount, r.shop_authenticator)
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT", "PAID"]
    assert audits(bus, "forged-result") == []


@pytest.mark.parametrize("via", ["direct", "relayed"])
async def test_the_shop_rejects_a_result_whose_shop_authenticator_fails(
        no_settlement: MemoryBus, keydir: Path, via: str) -> None:
    bus = no_settlement
    cmd, request = await buy(bus, mode="DIRECT_BOTH" if via == "direct" else "VIA_TERMINAL",
                             second_delay_ms=LATER)
    key = join_key(request.shop_id, request.order_id)
    result = dataclasses.replace(settlement_result(keydir, request, recipient="shop"),
                                 shop_authenticator=crypto.new_secret(32))
    if via == "direct":
        await bus.send(RESULTS, result, key, "settlement")
    else:
        await bus.send(RELAYED, wallet.relay_of(result), key, "terminal")
    await bus.drain()
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT", "RESULT_REJECTED"]
    assert len(audits(bus, "forged-result")) == 1


# -- cl. 15 / 32 / 44: the held account, only after the user's authentication succeeds ------

@pytest.mark.parametrize("password_right", [True, False], ids=["right", "wrong"])
async def test_the_held_account_is_charged_only_after_the_user_authenticates(
        bus: MemoryBus, keydir: Path, tmp_path: Path, password_right: bool) -> None:
    cmd, request = await buy(bus, user="dave", wrong_password=not password_right)
    [second] = [s for s in bus.messages(SECOND, SecondRequest) if s.session == cmd.session]
    assert second.account_sealed is None  # dave's account is held at the settlement server
    [result] = user_results(bus, request.order_id)
    authorizations = bus.messages("kessai.authorizations", Authorization)
    held = secrets(keydir, "settlement")["held_accounts"]["dave"]
    async with await Ledger.open(tmp_path / "issuer.sqlite") as ledger:
        balance = await ledger.balance(held["pan"])
    assert balance is not None
    if password_right:
        assert result.outcome == "APPROVED" and len(authorizations) == 1
        assert balance.minor == 300_000 - request.amount.minor
    else:
        assert result.outcome == "AUTH_FAILED"
        assert authorizations == []  # the FI host is never asked
        assert balance.minor == 300_000


# -- cl. 10 / 27 / 39: the user's key is looked up by the user id of the request ------------

async def test_a_valid_signature_by_another_user_does_not_authenticate_the_named_user(
        bus: MemoryBus, keydir: Path) -> None:
    cmd, request = await buy(bus, second_delay_ms=LATER)  # alice's order; her device waits
    bob_signing = secrets(keydir, "terminal")["wallets"]["bob"]["signing"]
    forged = second_for(keydir, request, "alice", signing=bob_signing)
    bob_key = bytes.fromhex(bob_signing)
    crypto.verify(crypto.signing_public(bob_key), forged.user_authenticator or b"",
                  authenticators.second_signing_bytes(forged))  # a valid signature, by bob
    key = join_key(request.shop_id, request.order_id)
    await bus.send(SECOND, forged, key, "terminal")
    await bus.drain()
    [result] = user_results(bus, request.order_id)
    assert result.outcome == "AUTH_FAILED"
    assert bus.messages("kessai.authorizations") == []
    # alice's own signature on the same order would have passed: the lookup is by user id.
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT", "NOT_PAID"]


# -- cl. 14 / 31 / 43: the account sealed in the 2nd request is the one the issuer charges -

@pytest.mark.parametrize("user", ["alice", "carol"])
async def test_the_issuer_charges_the_account_sealed_in_the_second_request(
        bus: MemoryBus, keydir: Path, tmp_path: Path, user: str) -> None:
    _, request = await buy(bus, user=user)
    card = secrets(keydir, "terminal")["wallets"][user]["cards"]["main"]
    [authorization] = bus.messages("kessai.authorizations", Authorization)
    issuer = keys.load_actor(keydir, "issuer")
    assert issuer.seal_private is not None
    opened = crypto.open_sealed(issuer.seal_private, authorization.account_sealed,
                                authenticators.issuer_account_context(authorization.join_key))
    assert authenticators.unpack_account(opened) == (card["pan"], card["expiry"])
    limits = {a["pan"]: a["limit"] for a in secrets(keydir, "issuer")["accounts"]}
    async with await Ledger.open(tmp_path / "issuer.sqlite") as ledger:
        for pan, limit in limits.items():
            balance = await ledger.balance(pan)
            assert balance is not None
            charged = request.amount.minor if pan == card["pan"] else 0
            assert balance.minor == limit - charged, pan


# -- cl. 9 / 20 / 26 / 38: the shop takes results and answers only from the settlement server

@pytest.mark.parametrize("impostor", ["terminal", "issuer", "shop-2"])
async def test_the_shop_takes_a_direct_result_and_an_inquiry_answer_only_from_settlement(
        no_settlement: MemoryBus, keydir: Path, impostor: str) -> None:
    bus = no_settlement
    cmd, request = await buy(bus, mode="DIRECT_BOTH", second_delay_ms=LATER)
    key = join_key(request.shop_id, request.order_id)
    # Right in every field, shop authenticator included: only the sender is wrong.
    await bus.send(RESULTS, settlement_result(keydir, request, recipient="shop",
                                              mode="DIRECT_BOTH"), key, impostor)
    await bus.send(ANSWERS, InquiryAnswer(request.shop_id, request.order_id, "APPROVED",
                                          request.amount), key, impostor)
    await bus.drain()
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT"]
    assert bus.messages("kessai.payment-results.acks") == []
    assert {d.reason for d in dead_letters(bus, RESULTS)} == {"unauthorized_sender"}
    assert {d.reason for d in dead_letters(bus, ANSWERS)} == {"unauthorized_sender"}
    # The same records from the settlement server are taken.
    await bus.send(ANSWERS, InquiryAnswer(request.shop_id, request.order_id, "APPROVED",
                                          request.amount), key, "settlement")
    await bus.drain()
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT", "PAID"]


# -- cl. 12 / 29 / 41: the terminal takes results only from the settlement server -----------

@pytest.mark.parametrize("impostor", ["shop-1", "issuer", "relay"])
async def test_the_terminal_takes_results_only_from_settlement(
        no_settlement: MemoryBus, keydir: Path, impostor: str) -> None:
    bus = no_settlement
    cmd, request = await buy(bus)
    key = join_key(request.shop_id, request.order_id)
    await bus.send(RESULTS, settlement_result(keydir, request), key, impostor)
    await bus.drain()
    assert bus.messages(RELAYED) == []
    assert [d.reason for d in dead_letters(bus, RESULTS) if d.agent == "terminal"] == [
        "unauthorized_sender"]
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT"]
    await bus.send(RESULTS, settlement_result(keydir, request), key, "settlement")
    await bus.drain()
    assert len(bus.messages(RELAYED, ResultRelay)) == 1


# -- cl. 49: every order exactly one terminal outcome -----------------------------------------

async def test_a_second_request_after_expiry_neither_collates_nor_reaches_the_fi_host(
        bus: MemoryBus, keydir: Path, caplog: pytest.LogCaptureFixture) -> None:
    cmd, request = await buy(bus, second_delay_ms=LATER)  # the device waits too long
    await elapse(bus, TIMINGS["t_first_ms"] + 2_000)
    results = [r for r in bus.messages(RESULTS, PaymentResult) if r.order_id == request.order_id]
    assert [(r.recipient, r.outcome) for r in results] == [("shop", "EXPIRED")]
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT", "NOT_PAID"]
    before = {topic: len(records) for topic, records in bus.log.items()}
    key = join_key(request.shop_id, request.order_id)
    with caplog.at_level(logging.INFO, logger="kessai.terminal"):
        second = second_for(keydir, request, "alice")
        for _ in range(2):  # and a resend of it
            await bus.send(SECOND, second, key, "terminal")
            await bus.drain()
    assert bus.messages("kessai.authorizations") == []  # the FI host is never asked
    assert audits(bus, "MISMATCH") == []  # nothing was collated
    late = [r for r in bus.messages(RESULTS, PaymentResult)
            if r.order_id == request.order_id][1:]
    assert [(r.recipient, r.outcome, r.session) for r in late] == [
        ("user", "EXPIRED", cmd.session)] * 2  # the user learns the one outcome ...
    told = [r.getMessage() for r in caplog.records if "tells the user" in r.getMessage()]
    assert told == [f"terminal {cmd.session} tells the user: order {request.order_id}: EXPIRED"]
    grown = {topic for topic, records in bus.log.items() if len(records) > before.get(topic, 0)}
    assert grown <= {SECOND, RESULTS, RELAYED, "kessai.terminal.sessions"}
    assert statuses(bus, cmd.session) == ["AWAITING_PAYMENT", "NOT_PAID"]  # ... once


# -- R10 / issue 6 item 9: a restarted settlement worker reads before it expires ------------

async def test_no_deadline_fires_for_a_partition_with_an_unread_second_request(
        bus: MemoryBus, keydir: Path) -> None:
    """The user's 2nd request was sent in time but is still unread when the deadline passes
    (the settlement worker was down): the deadline scan waits for the partition to be read,
    so the order settles instead of expiring."""
    cmd, request = await buy(bus, second_delay_ms=LATER)
    key = join_key(request.shop_id, request.order_id)
    await bus.send(SECOND, second_for(keydir, request, "alice"), key, "terminal")  # unread
    bus.clock.advance(TIMINGS["t_first_ms"] + 1_000)  # type: ignore[attr-defined]
    await bus.fire_timers()
    assert [t for t in bus.messages("kessai.settlement.timers", DeadlineTick)
            if t.join_key == key] == []
    await bus.drain()
    await elapse(bus, 3_000)
    assert [r.outcome for r in user_results(bus, request.order_id)] == ["APPROVED"]
    assert statuses(bus, cmd.session)[-1] == "PAID"
