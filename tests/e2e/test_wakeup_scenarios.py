"""Seed 002 (EP 1 280 115) embodiment 1, spec §6.4 X3 scenarios, written once and run on the
in-memory bus (real handlers, door and crypto; time jumps) and on the real broker (every agent
a worker process; time passes).

Phones (dev key set): 1234567 holds cards A (user 00001, issuer 2a11111) and B (00004, also
2a11111); 2234567 is 00002's (issuer 2a22222); 3345678 is 00003's; 5555555 is 00005's (a card
in no issuer range); 7654321 holds 00002's pair but is not the device registered for it.
POS pos-1 is merchant 1111111111 (A), pos-2 is 2222222222 (B).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from kessai import authenticators, crypto, envelope, keys
from kessai.errors import KessaiError
from kessai.settings import Settings
from protocols.wakeup import START_PAYMENT_APP, credit_card_context
from schemas.v1 import DeadLetter
from schemas.wakeup import (
    AuthRequest,
    CompletionNotice,
    CreditRequest,
    Mail,
    MethodChoice,
    PaymentMethods,
    PosCompletion,
    SessionOpen,
    ShortRangeUserId,
    TransactionDetails,
    TxnNumber,
)
from tests.e2e.conftest import E2E_TIMINGS
from tests.e2e.tiers import BrokerTier, MemoryTier, Tier, wait_for_after
from tests.e2e.wakeup_world import (
    TOTAL,
    WAKEUP_AGENTS,
    WAKEUP_ENV,
    eventually,
    messages,
    press,
    raw_values,
    receipt,
    records,
    ref,
    sale,
    screen,
    screens_of,
)

pytestmark = [pytest.mark.e2e]
CONFIRM_MS = int(WAKEUP_ENV["KESSAI_PAYGATE_CONFIRM_MS"])
RESPONSE_MS = int(WAKEUP_ENV["KESSAI_DEVICE_RESPONSE_MS"])
TTL_MS = int(WAKEUP_ENV["KESSAI_DEVICE_AUTH_TTL_MS"])
DEVICE_WAIT_MS = int(WAKEUP_ENV["KESSAI_PAYGATE_DEVICE_WAIT_MS"])


@pytest.fixture(params=["memory", "broker"])
async def tier(request: pytest.FixtureRequest, keys_dir, tmp_path,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Tier]:
    if request.param == "memory":
        for k, v in WAKEUP_ENV.items():
            monkeypatch.setenv(k, v)
        t: MemoryTier | BrokerTier = MemoryTier(
            Settings(keys_dir=keys_dir, data_dir=tmp_path, **E2E_TIMINGS), WAKEUP_AGENTS)
    else:
        request.applymarker(pytest.mark.broker)
        t = BrokerTier(request.getfixturevalue("system").settings)
    try:
        yield t
    finally:
        await t.close()


async def count(tier: Tier, screen_name: str, device_id: str) -> int:
    return len(await screens_of(tier, device_id))


async def pay_until_methods(tier: Tier, pos_id: str, device_id: str, card: str,
                            user_id: str) -> tuple[str, int]:
    """Sale, login, hand-over, wake-up, session, details, Agree: up to the method list."""
    sale_ref = ref()
    before = len(await screens_of(tier, device_id))
    await sale(tier, pos_id, sale_ref)
    await press(tier, device_id, "login", card=card, user_id=user_id, pos_id=pos_id)
    await screen(tier, device_id, "details", before)
    await press(tier, device_id, "agree")
    await screen(tier, device_id, "methods", before)
    return sale_ref, before


async def test_1_happy_path_in_store(tier: Tier) -> None:
    """X3 (1): the card number never reaches the POS; completion at the POS and the phone."""
    sale_ref, before = await pay_until_methods(tier, "pos-1", "1234567", "CARD A", "00001")
    methods = await screen(tier, "1234567", "methods", before)
    assert [o.split(":")[0] for o in methods.options] == ["L", "I", "R"]
    await press(tier, "1234567", "choose", method="I")
    done = await screen(tier, "1234567", "completed", before)
    assert done.text == "Payment has now been completed."
    r = await receipt(tier, "pos-1", sale_ref)
    assert r.outcome == "COMPLETED" and r.transaction_number
    assert f"TOTAL {TOTAL} JPY" in r.lines and "METHOD installments" in r.lines
    numbers = [m for m in await messages(tier, "kessai.pos.txn-numbers", TxnNumber)
               if m.sale_ref == sale_ref]
    assert [n.transaction_number for n in numbers] == [r.transaction_number]
    credit = [m for m in await messages(tier, "kessai.credit.requests", CreditRequest)
              if m.transaction_number == r.transaction_number]
    assert len(credit) == 1 and credit[0].method == "I" and credit[0].amount.minor == TOTAL


@pytest.fixture
async def memory(keys_dir, tmp_path, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[MemoryTier]:
    """The in-memory tier alone, for what only an injected clock can show."""
    for k, v in WAKEUP_ENV.items():
        monkeypatch.setenv(k, v)
    t = MemoryTier(Settings(keys_dir=keys_dir, data_dir=tmp_path, **E2E_TIMINGS),
                   WAKEUP_AGENTS)
    try:
        yield t
    finally:
        await t.close()


async def test_p2_the_pos_takes_the_user_id_only_when_it_polls(memory: MemoryTier) -> None:
    """P2/Sd4: the handed-over user id waits in the mobile terminal; only the POS's poll timer
    takes it and then asks for the transaction number (in memory, where time stands still
    until the test moves it; on the broker every POS scenario above needs the poll)."""
    tier = memory
    from schemas.wakeup import DeviceCommand, PosSale, TxnNumberRequest, WakeupTick
    from tests.e2e.wakeup_world import FIG16_ITEMS, TAX, next_poll

    sale_ref, before = ref(), len(await screens_of(tier, "1234567"))
    await tier.send("kessai.pos.sales", PosSale("pos-1", sale_ref, FIG16_ITEMS, TAX, "JPY"),
                    "pos-1", "operator")
    await tier.send("kessai.device.commands", DeviceCommand(
        "1234567", "login", card="CARD A", user_id="00001", pos_id="pos-1"), "1234567",
        "operator")
    handed = await tier.wait_for("kessai.shortrange.user-ids",
                                 lambda m: isinstance(m, ShortRangeUserId)
                                 and m.device_id == "1234567" and m.pos_id == "pos-1")
    assert not [m for m in await messages(tier, "kessai.paygate.txn-requests",
                                          TxnNumberRequest) if m.sale_ref == sale_ref]
    await next_poll(tier)
    req = await tier.wait_for("kessai.paygate.txn-requests",
                              lambda m: isinstance(m, TxnNumberRequest)
                              and m.sale_ref == sale_ref)
    assert req.user_id == handed.user_id == "00001"
    asked_at = next(e.created_ms for e, m in await records(
        tier, "kessai.paygate.txn-requests") if getattr(m, "sale_ref", "") == sale_ref)
    polls = [e.created_ms for e, m in await records(tier, "kessai.pos.polls")
             if isinstance(m, WakeupTick) and m.key == "pos-1" and e.created_ms <= asked_at]
    assert polls, "the request was not sent by a poll"
    await screen(tier, "1234567", "details", before)  # finish it: the user is free again
    await press(tier, "1234567", "agree")
    await screen(tier, "1234567", "methods", before)
    await press(tier, "1234567", "choose", method="L")
    assert (await receipt(tier, "pos-1", sale_ref)).outcome == "COMPLETED"


async def test_2_wrong_password_sends_nothing(tier: Tier) -> None:
    """X3 (2), D1: a wrong password → rejected on the phone, no user id handed over."""
    before = len(await screens_of(tier, "2234567"))
    handed = len(await messages(tier, "kessai.shortrange.user-ids", ShortRangeUserId))
    await press(tier, "2234567", "login", card="CARD A", user_id="00002", pos_id="pos-2",
                wrong_password=True)
    await screen(tier, "2234567", "rejected", before)
    assert len(await messages(tier, "kessai.shortrange.user-ids", ShortRangeUserId)) == handed


async def test_3_expired_auth_result_sends_no_authenticity(tier: Tier) -> None:
    """X3 (3), D3: past the TTL the result is deleted; the wake-up finds none, sends nothing;
    the gateway's device deadline stops the sale and the POS prints it."""
    before = len(await screens_of(tier, "3345678"))
    await press(tier, "3345678", "login", card="CARD A", user_id="00003", pos_id="pos-1")
    await screen(tier, "3345678", "handed_over", before)
    await tier.elapse(TTL_MS + 2_000)
    sale_ref = ref()
    await sale(tier, "pos-1", sale_ref)
    await screen(tier, "3345678", "aborted", before)
    r = await receipt(tier, "pos-1", sale_ref, timeout=40, after_ms=DEVICE_WAIT_MS + 2_000)
    assert r.outcome == "STOPPED" and "device_timeout" in r.lines[-1]
    opens = [m for m in await messages(tier, "kessai.paygate.sessions", SessionOpen)
             if m.user_id == "00003"]
    assert opens == []


async def test_4_spoofed_wakeup_mail_is_dropped(tier: Tier) -> None:
    """X3 (4), D4: a mail not from the gateway's address (or without the command) starts
    nothing, even with a stored authentication result."""
    before = len(await screens_of(tier, "5555555"))
    await press(tier, "5555555", "login", card="CARD A", user_id="00005", pos_id="pos-9")
    await screen(tier, "5555555", "handed_over", before)
    spoofed, no_command = "m-" + uuid.uuid4().hex[:8], "m-" + uuid.uuid4().hex[:8]
    await tier.send("kessai.device.mail", Mail("5555555", spoofed, "payment@evil.example",
                                               [START_PAYMENT_APP]), "5555555", "direction")
    await tier.send("kessai.device.mail", Mail("5555555", no_command,
                                               "payment@paygate.kessai.example", ["HELLO"]),
                    "5555555", "direction")
    await tier.elapse(1_000)
    await messages(tier, "kessai.paygate.sessions")
    if isinstance(tier, BrokerTier):
        import asyncio
        await asyncio.sleep(3)
    opened = [m for m in await messages(tier, "kessai.paygate.sessions", SessionOpen)
              if m.session_id in (spoofed, no_command)]
    assert opened == []
    assert [s.screen for s in (await screens_of(tier, "5555555"))[before:]] == ["handed_over"]


async def test_5_wrong_device_id_stops_the_payment(tier: Tier) -> None:
    """X3 (5), G3 (b): an auth request from a device other than the one registered for the
    user → error to that device, the transaction stopped, nothing charged."""
    sale_ref = ref()
    await sale(tier, "pos-2", sale_ref)
    # Phone 7654321 holds 00002's pair and hands the id over; the wake-up goes to the device
    # registered for 00002 (2234567, which has no result stored and aborts).
    await press(tier, "7654321", "login", card="CARD A", user_id="00002", pos_id="pos-2")
    number = (await tier.wait_for("kessai.pos.txn-numbers",
                                  lambda m: isinstance(m, TxnNumber)
                                  and m.sale_ref == sale_ref)).transaction_number
    session = "rogue-" + uuid.uuid4().hex[:6]
    await tier.send("kessai.paygate.sessions",
                    SessionOpen("00002", "7654321", session, "https://paygate.kessai.example/pay"),
                    "00002", "device-7654321")
    await tier.send("kessai.paygate.sessions",
                    AuthRequest("00002", "7654321", session, True, 0), "00002", "device-7654321")
    done = await tier.wait_for("kessai.pos.completions",
                               lambda m: isinstance(m, PosCompletion)
                               and m.sale_ref == sale_ref)
    assert (done.outcome, done.reason) == ("STOPPED", "device_id_mismatch")
    assert not [m for m in await messages(tier, "kessai.credit.requests", CreditRequest)
                if m.transaction_number == number]
    assert not [m for m in await messages(tier, "kessai.device.sessions", TransactionDetails)
                if m.transaction_number == number]


async def test_6_not_agree_sends_nothing_and_the_gateway_times_out(tier: Tier) -> None:
    """X3 (6), D8/G5: Not agree emits nothing; the confirmation timer stops the transaction."""
    sale_ref = ref()
    before = len(await screens_of(tier, "2234567"))
    await sale(tier, "pos-2", sale_ref)
    await press(tier, "2234567", "login", card="CARD A", user_id="00002", pos_id="pos-2")
    await screen(tier, "2234567", "details", before)
    sent = len(await messages(tier, "kessai.paygate.sessions"))
    await press(tier, "2234567", "not_agree")
    await screen(tier, "2234567", "stopped", before)
    assert len(await messages(tier, "kessai.paygate.sessions")) == sent
    r = await receipt(tier, "pos-2", sale_ref, after_ms=CONFIRM_MS + 2_000)
    assert r.outcome == "STOPPED" and "confirmation_timeout" in r.lines[-1]
    assert not [m for m in await messages(tier, "kessai.credit.requests", CreditRequest)
                if m.transaction_number == r.transaction_number]


async def test_7_device_times_out_when_the_gateway_is_silent(tier: Tier) -> None:
    """X3 (7), D7: a command mail for which the gateway has no transaction: the gateway says
    nothing, and after the response time the phone aborts."""
    before = len(await screens_of(tier, "5555555"))
    await press(tier, "5555555", "login", card="CARD A", user_id="00005", pos_id="pos-9")
    await screen(tier, "5555555", "handed_over", before)
    mail_id = "m-" + uuid.uuid4().hex[:8]
    await tier.send("kessai.device.mail", Mail("5555555", mail_id,
                                               "payment@paygate.kessai.example",
                                               [START_PAYMENT_APP]), "5555555", "direction")
    await screen(tier, "5555555", "wakeup", before)
    aborted = await screen(tier, "5555555", "aborted", before, after_ms=RESPONSE_MS + 2_000)
    assert "must be carried out from the beginning" in aborted.text


async def test_8_second_card_routes_to_its_own_card(tier: Tier) -> None:
    """X3 (8): card B of phone 1234567 (user 00004) pays with 00004's card."""
    sale_ref, before = await pay_until_methods(tier, "pos-1", "1234567", "CARD B", "00004")
    await press(tier, "1234567", "choose", method="L")
    await screen(tier, "1234567", "completed", before)
    r = await receipt(tier, "pos-1", sale_ref)
    credit = [m for m in await messages(tier, "kessai.credit.requests", CreditRequest)
              if m.transaction_number == r.transaction_number]
    issuer = keys.load_actor(tier.settings.keys_dir, "issuer")
    assert issuer.seal_private is not None
    pan, _ = authenticators.unpack_account(crypto.open_sealed(
        issuer.seal_private, credit[0].card_sealed, credit_card_context(credit[0].join_key)))
    assert pan == "1350012345678907"


async def test_9_methods_follow_fig_10_and_nothing_else_is_taken(tier: Tier) -> None:
    """X3 (9), G6/G7/D9: merchant 2222222222 × issuer 2a22222 → L, I, pB, R; the phone will
    not send an unlisted method, and one sent anyway stops the transaction uncharged."""
    sale_ref, before = await pay_until_methods(tier, "pos-2", "2234567", "CARD A", "00002")
    methods = await screen(tier, "2234567", "methods", before)
    assert [o.split(":")[0] for o in methods.options] == ["L", "I", "pB", "R"]
    await press(tier, "2234567", "choose", method="B")
    await screen(tier, "2234567", "error", before)
    offered = [m for m in await messages(tier, "kessai.device.sessions", PaymentMethods)
               if m.device_id == "2234567"][-1]
    assert not [m for m in await messages(tier, "kessai.paygate.sessions", MethodChoice)
                if m.session_id == offered.session_id]  # D9: the phone sent no "B"
    await tier.send("kessai.paygate.sessions",
                    MethodChoice("00002", "2234567", offered.session_id, "B"), "00002",
                    "device-2234567")
    done = await tier.wait_for("kessai.pos.completions",
                               lambda m: isinstance(m, PosCompletion)
                               and m.sale_ref == sale_ref)
    assert (done.outcome, done.reason) == ("STOPPED", "method_not_offered")
    assert not [m for m in await messages(tier, "kessai.credit.requests", CreditRequest)
                if m.transaction_number == done.transaction_number]


async def test_10_online_shop_in_place_of_the_pos(tier: Tier) -> None:
    """X3 (10), V3/G10: the customer authenticates on the phone, checks out at the web shop
    with their user id; the gateway wakes the phone, it agrees and picks a method; the web
    shop gets the completion on its own topic (no POS sees it)."""
    from schemas.wakeup import TxnNumberRequest, WebOrder, WebOrderResult
    from tests.e2e.wakeup_world import FIG16_ITEMS, TAX

    before = len(await screens_of(tier, "1234567"))
    await press(tier, "1234567", "login", card="CARD A", user_id="00001", pos_id="")
    await screen(tier, "1234567", "authenticated", before)
    order_ref = ref()
    await tier.send("kessai.webshop.orders", WebOrder("webshop-1", order_ref, "00001",
                                                      FIG16_ITEMS, TAX), "webshop-1", "operator")
    await screen(tier, "1234567", "details", before)
    await press(tier, "1234567", "agree")
    methods = await screen(tier, "1234567", "methods", before)
    assert [o.split(":")[0] for o in methods.options] == ["L", "I", "R"]
    await press(tier, "1234567", "choose", method="R")
    done = await tier.wait_for("kessai.webshop.results",
                               lambda m: isinstance(m, WebOrderResult)
                               and m.order_ref == order_ref)
    assert (done.shop_id, done.outcome, done.method) == ("webshop-1", "COMPLETED", "R")
    asked = [m for m in await messages(tier, "kessai.paygate.txn-requests", TxnNumberRequest)
             if m.sale_ref == order_ref]
    assert [(m.pos_id, m.merchant_code, m.user_id, m.total) for m in asked] == \
        [("webshop-1", "1111111111", "00001", TOTAL)]
    assert not [m for m in await messages(tier, "kessai.pos.completions", PosCompletion)
                if m.sale_ref == order_ref]
    # No card on any topic the web shop reads: test_z scans them (after this test).


async def test_10_a_pos_cannot_ask_in_a_web_shops_name(tier: Tier) -> None:
    """V3: the completion goes to the requester the request names, so that name must be the
    signer's: a POS naming web shop 1 is a dead letter and gets no transaction number."""
    from schemas.wakeup import TxnNumberRequest
    from tests.e2e.wakeup_world import FIG16_ITEMS, TAX

    order_ref = ref()
    await tier.send("kessai.paygate.txn-requests", TxnNumberRequest(
        "webshop-1", order_ref, "1111111111", "00003", FIG16_ITEMS, TAX, TOTAL, "JPY"),
        "00003", "pos-1")

    async def probe() -> None:
        letters = [m for m in await messages(tier, "kessai.dead-letters", DeadLetter)
                   if m.topic == "kessai.paygate.txn-requests"
                   and order_ref.encode() in m.original]
        assert [m.reason for m in letters] == ["sender_mismatch"]

    await eventually(tier, probe)
    assert not [m for m in await messages(tier, "kessai.webshop.txn-numbers", TxnNumber)
                if m.sale_ref == order_ref]


async def test_v4_the_gateway_sends_the_users_history_to_their_phone_only(tier: Tier) -> None:
    """V4/G10 (M21): after a payment the logged-in phone asks for its user's history; the
    gateway renders table 154b as HTML (merchant, goods, total, method, outcome; no card) to
    that phone. Another phone asking for the same user gets a dead letter, no history."""
    from schemas.wakeup import HistoryRequest, TransactionHistory

    sale_ref, _ = await pay_until_methods(tier, "pos-2", "2234567", "CARD A", "00002")
    await press(tier, "2234567", "choose", method="pB")
    number = (await receipt(tier, "pos-2", sale_ref)).transaction_number
    await press(tier, "2234567", "history")
    got = await tier.wait_for("kessai.device.sessions",
                              lambda m: isinstance(m, TransactionHistory)
                              and m.device_id == "2234567" and number in m.html)
    row = next(r for r in got.html.split("<tr") if number in r)
    for shown in ("B (2222222222)", "Sencha 100g ×2", f"{TOTAL} JPY", "bonus (partial)",
                  "COMPLETED"):
        assert shown in row, (shown, row)
    assert not [c for c in secrets_of_the_dev_world() if c.decode() in got.html]
    rogue = "h-rogue-" + uuid.uuid4().hex[:6]
    await tier.send("kessai.paygate.history-requests", HistoryRequest("00002", "7654321", rogue),
                    "00002", "device-7654321")

    async def probe() -> None:
        letters = [m for m in await messages(tier, "kessai.dead-letters", DeadLetter)
                   if m.topic == "kessai.paygate.history-requests"
                   and rogue.encode() in m.original]
        assert [m.reason for m in letters] == ["device_mismatch"]

    await eventually(tier, probe)


async def test_c1_the_credit_server_checks_the_card_and_refuses_over_its_limit(
        tier: Tier) -> None:
    """C1/S11: the credit server checks the card it was sent against its records; user
    00003's card (limit 1 000 JPY) is refused for 4 620 JPY: stopped, the phone told."""
    sale_ref, before = await pay_until_methods(tier, "pos-2", "3345678", "CARD A", "00003")
    methods = await screen(tier, "3345678", "methods", before)
    assert [o.split(":")[0] for o in methods.options] == ["L", "B"]  # 2222222222 × 2s44444
    await press(tier, "3345678", "choose", method="L")
    err = await screen(tier, "3345678", "error", before)
    assert "credit_refused:over_limit" in err.text
    r = await receipt(tier, "pos-2", sale_ref)
    assert r.outcome == "STOPPED" and "credit_refused:over_limit" in r.lines[-1]


async def test_unknown_card_range_stops_before_methods(tier: Tier) -> None:
    """Bad input: a card in no issuer range → stopped at Se14, no methods, nothing charged."""
    sale_ref = ref()
    before = len(await screens_of(tier, "5555555"))
    await sale(tier, "pos-1", sale_ref)
    await press(tier, "5555555", "login", card="CARD A", user_id="00005", pos_id="pos-1")
    await screen(tier, "5555555", "details", before)
    await press(tier, "5555555", "agree")
    err = await screen(tier, "5555555", "error", before)
    assert "unknown_card_range" in err.text
    r = await receipt(tier, "pos-1", sale_ref)
    assert r.outcome == "STOPPED" and "unknown_card_range" in r.lines[-1]


async def test_unknown_user_and_merchant_are_rejected(tier: Tier) -> None:
    """Bad input: an unknown user id or merchant code → REJECTED to the POS, no number."""
    from schemas.wakeup import TxnNumberRequest
    from tests.e2e.wakeup_world import FIG16_ITEMS, TAX

    r1, r2 = ref(), ref()
    await tier.send("kessai.paygate.txn-requests", TxnNumberRequest(
        "pos-1", r1, "1111111111", "99999", FIG16_ITEMS, TAX, TOTAL, "JPY"), "99999", "pos-1")
    await tier.send("kessai.paygate.txn-requests", TxnNumberRequest(
        "pos-1", r2, "0000000000", "00003", FIG16_ITEMS, TAX, TOTAL, "JPY"), "00003", "pos-1")
    for sale_ref, reason in ((r1, "unknown_user"), (r2, "unknown_merchant")):
        done = await tier.wait_for("kessai.pos.completions",
                                   lambda m, s=sale_ref: isinstance(m, PosCompletion)
                                   and m.sale_ref == s)
        assert (done.outcome, done.reason, done.transaction_number) == ("REJECTED", reason, "")


async def test_replayed_and_late_session_messages_are_dead_letters(tier: Tier) -> None:
    """Bad input: the same session message again at another offset (a replay) and a message
    for a finished session → dead letters with their reasons; nothing charged twice."""
    sale_ref, before = await pay_until_methods(tier, "pos-1", "1234567", "CARD A", "00001")
    await press(tier, "1234567", "choose", method="R")
    await screen(tier, "1234567", "completed", before)
    envs = [(e, m) for e, m in await records(tier, "kessai.paygate.sessions")
            if isinstance(m, MethodChoice) and m.user_id == "00001" and m.method == "R"]
    env, choice = envs[-1]
    from kessai import envelope as env_mod
    raw = env_mod.encode(env)
    if isinstance(tier, MemoryTier):
        tier.bus.append("kessai.paygate.sessions", b"00001", raw, None, env.headers())
    else:
        from aiokafka import AIOKafkaProducer
        p = AIOKafkaProducer(bootstrap_servers=tier.settings.bootstrap, acks="all",
                             enable_idempotence=False)
        await p.start()
        try:
            await p.send_and_wait("kessai.paygate.sessions", raw, key=b"00001",
                                  headers=env.headers())
        finally:
            await p.stop()
    await tier.send("kessai.paygate.sessions",
                    MethodChoice("00001", "1234567", choice.session_id, "L"), "00001",
                    "device-1234567")

    async def probe() -> None:
        letters = [m for m in await messages(tier, "kessai.dead-letters", DeadLetter)
                   if m.topic == "kessai.paygate.sessions"]
        reasons = {m.reason for m in letters}
        assert {"replayed", "out_of_sequence"} <= reasons, reasons

    await eventually(tier, probe)
    r = await receipt(tier, "pos-1", sale_ref)
    assert len([m for m in await messages(tier, "kessai.credit.requests", CreditRequest)
                if m.transaction_number == r.transaction_number]) == 1
    assert len([m for m in await messages(tier, "kessai.device.sessions", CompletionNotice)
                if m.transaction_number == r.transaction_number]) == 1


async def card_sale(tier: Tier, pos_id: str, user_id: str, method: str = "L") -> str:
    from schemas.wakeup import PosSale
    from tests.e2e.wakeup_world import FIG16_ITEMS, TAX

    sale_ref = ref()
    await tier.send("kessai.pos.sales", PosSale(pos_id, sale_ref, FIG16_ITEMS, TAX, "JPY",
                                                encrypted_card_user=user_id, method=method),
                    pos_id, "operator")
    return sale_ref


async def test_11_embodiment_2_happy_path(tier: Tier) -> None:
    """X3 (11), K2–K6: confirmation answered with the password; the POS gets only the
    ciphertext, the credit server the key; it decrypts, authorises: allowance."""
    from schemas.wakeup import EncryptedCard, KeyDistribution

    before = len(await screens_of(tier, "1234567"))
    sale_ref = await card_sale(tier, "pos-1", "00001")
    await screen(tier, "1234567", "confirm", before)
    await press(tier, "1234567", "confirm")
    r = await receipt(tier, "pos-1", sale_ref)
    assert r.outcome == "COMPLETED", r.lines
    enc = (await tier.wait_for("kessai.pos.card-numbers",
                               lambda m: isinstance(m, EncryptedCard)
                               and m.request_ref == sale_ref)).encrypted_card_number
    assert b"1525000012345678" not in enc and len(enc) > 16
    dist = [m for m in await messages(tier, "kessai.credit.keys", KeyDistribution)
            if m.encrypted_card_number == enc]
    assert len(dist) == 1
    issuer = keys.load_actor(tier.settings.keys_dir, "issuer")
    assert issuer.seal_private is not None
    from protocols import wakeup as w
    key = crypto.open_sealed(issuer.seal_private, dist[0].key_sealed,
                             w.credit_key_context(enc))
    assert w.decrypt_card(key, enc) == ("1525000012345678", "2031-12")


@pytest.mark.parametrize("case", ["no_reply", "bad_password", "no_card", "card_expired",
                                  "user_not_found"])
async def test_12_embodiment_2_refusals(tier: Tier, case: str) -> None:
    """X3 (12), K1/K2: each rejection reason is its own outcome at the POS, and neither the
    ciphertext nor a key leaves the gateway."""
    from schemas.wakeup import CardRefused, EncryptedCard

    user = {"no_card": "00006", "card_expired": "00007", "user_not_found": "99999"}.get(
        case, "00002")
    before = len(await screens_of(tier, "2234567"))
    sale_ref = await card_sale(tier, "pos-2", user)
    no_reply_ms = 0
    if case in ("no_reply", "bad_password"):
        await screen(tier, "2234567", "confirm", before)
        if case == "bad_password":
            await press(tier, "2234567", "confirm", wrong_password=True)
        else:
            no_reply_ms = int(WAKEUP_ENV["KESSAI_PAYGATE_REPLY_MS"]) + 2_000
    refused = await wait_for_after(tier, no_reply_ms, "kessai.pos.card-numbers",
                                   lambda m: isinstance(m, CardRefused)
                                   and m.request_ref == sale_ref, timeout=40)
    assert refused.reason == case
    r = await receipt(tier, "pos-2", sale_ref)
    assert r.outcome == "REJECTED" and case in r.lines[-1]
    assert not [m for m in await messages(tier, "kessai.pos.card-numbers", EncryptedCard)
                if m.request_ref == sale_ref]


async def test_13_embodiment_2_unknown_ciphertext_fails_authentication(tier: Tier) -> None:
    """X3 (13), K6: a credit request with an encrypted number the credit server holds no key
    for → failure of authentication to the POS."""
    from kessai.money import Money
    from protocols import wakeup as w
    from schemas.wakeup import CreditAnswer, PosCreditRequest

    enc = w.encrypt_card(w.new_card_key(), "1525000012345678", "2031-12")
    request_ref = ref()
    await tier.send("kessai.credit.pos-requests", PosCreditRequest(
        "pos-1", request_ref, enc, request_ref, "1111111111", Money(TOTAL, "JPY"), "L"),
        w.encrypted_card_ref(enc), "pos-1")
    # The key may come after the request (two topics): the credit server waits for it first.
    answer = await wait_for_after(tier, int(WAKEUP_ENV["KESSAI_CREDIT_KEY_WAIT_MS"]) + 2_000,
                                  "kessai.pos.credit-answers",
                                  lambda m: isinstance(m, CreditAnswer)
                                  and m.request_ref == request_ref)
    assert (answer.allowed, answer.reason) == (False, "failure_of_authentication")


async def test_k6_a_request_read_before_its_key_waits_for_it(tier: Tier) -> None:
    """K5/K6: the POS's credit request and the gateway's key come on two topics, so the credit
    server may read the request first: it answers once the key is there, with allowance."""
    from kessai.money import Money
    from protocols import wakeup as w
    from schemas.wakeup import CreditAnswer, KeyDistribution, PosCreditRequest

    card_key = w.new_card_key()
    enc = w.encrypt_card(card_key, "1525000012345678", "2031-12")
    request_ref, card_ref = ref(), w.encrypted_card_ref(enc)
    await tier.send("kessai.credit.pos-requests", PosCreditRequest(
        "pos-1", request_ref, enc, request_ref, "1111111111", Money(TOTAL, "JPY"), "L"),
        card_ref, "pos-1")
    issuer = keys.load_registry(tier.settings.keys_dir).sealing["issuer"][1]
    sealed = crypto.seal(issuer, card_key, w.credit_key_context(enc))
    await tier.send("kessai.credit.keys", KeyDistribution(enc, sealed), card_ref, "paygate")
    answer = await tier.wait_for("kessai.pos.credit-answers",
                                 lambda m: isinstance(m, CreditAnswer)
                                 and m.request_ref == request_ref)
    assert (answer.allowed, answer.reason) == (True, "allowance")


async def test_k7_a_fresh_ciphertext_per_transaction(tier: Tier) -> None:
    """K3/K7: two payments of the same user give two different encrypted card numbers."""
    from schemas.wakeup import EncryptedCard

    refs = []
    for _ in range(2):
        before = len(await screens_of(tier, "1234567"))
        refs.append(await card_sale(tier, "pos-1", "00004"))
        await screen(tier, "1234567", "confirm", before)
        await press(tier, "1234567", "confirm")
        await receipt(tier, "pos-1", refs[-1])
    encs = [m.encrypted_card_number
            for m in await messages(tier, "kessai.pos.card-numbers", EncryptedCard)
            if m.request_ref in refs]
    assert len(encs) == 2 and encs[0] != encs[1]
    from protocols import wakeup as w
    from schemas.wakeup import KeyDistribution

    issuer = keys.load_actor(tier.settings.keys_dir, "issuer")
    assert issuer.seal_private is not None
    keys_of = [crypto.open_sealed(issuer.seal_private, m.key_sealed,
                                  w.credit_key_context(m.encrypted_card_number))
               for m in await messages(tier, "kessai.credit.keys", KeyDistribution)
               if m.encrypted_card_number in encs]
    assert len(keys_of) == 2 and keys_of[0] != keys_of[1]


async def test_p1_a_conventional_sale_never_asks_the_gateway(tier: Tier) -> None:
    """P1 (Sd3): without the service the POS pays conventionally; nothing to the gateway."""
    from schemas.wakeup import TxnNumberRequest

    sale_ref = ref()
    await sale(tier, "pos-2", sale_ref, use_service=False)
    r = await receipt(tier, "pos-2", sale_ref)
    assert r.outcome == "COMPLETED" and r.lines[-1] == "PAID CONVENTIONALLY"
    assert not [m for m in await messages(tier, "kessai.paygate.txn-requests",
                                          TxnNumberRequest) if m.sale_ref == sale_ref]


async def test_w2_only_the_mailbox_owner_gets_the_mail(tier: Tier) -> None:
    """W2: a fetch signed by another phone is a dead letter; no mail is delivered."""
    from schemas.wakeup import MailFetch

    mail_id = "mail-" + uuid.uuid4().hex[:8]
    await tier.send("kessai.direction.mail-fetch", MailFetch("1234567", mail_id), "1234567",
                    "device-7654321")

    async def probe() -> None:
        letters = [m for m in await messages(tier, "kessai.dead-letters", DeadLetter)
                   if m.topic == "kessai.direction.mail-fetch" and mail_id.encode() in m.original]
        assert [m.reason for m in letters] == ["not_mailbox_owner"]

    await eventually(tier, probe)
    assert not [m for m in await messages(tier, "kessai.device.mail", Mail)
                if m.mail_id == mail_id]


def secrets_of_the_dev_world() -> list[bytes]:
    from sim import devdata

    out: list[bytes] = []
    for u in devdata.WAKEUP_USERS:
        out += [u.card_number.encode(), u.password.encode(), u.expiration.encode()]
    return [s for s in out if s]


FORBIDDEN_FIELDS = ("card_number", "expiration", "password", "decryption_key", "pan")


async def test_z_no_topic_the_pos_phone_or_direction_read_carries_a_secret(tier: Tier) -> None:
    """G9/P5/D11/X2: after the scenarios (on the broker: every one before this; in memory: a
    payment and a Not agree), no record of any topic the POS, the phone or the direction
    server may read holds a card number, a password or a secret-named field, and no topic
    at all holds a card number in the clear."""
    from topics.catalogue import CATALOGUE, readable_by

    if isinstance(tier, MemoryTier):
        await test_1_happy_path_in_store(tier)
        await test_6_not_agree_sends_nothing_and_the_gateway_times_out(tier)
        await test_10_online_shop_in_place_of_the_pos(tier)
    # Embodiment 2 here on both tiers, so its keys are on the log even when this test runs
    # alone (on the broker the scenarios before it add their records too).
    await test_11_embodiment_2_happy_path(tier)
    exposed = {t.name for kind in ("pos", "device", "direction", "webshop")
               for t in readable_by(kind)}
    secrets = secrets_of_the_dev_world()
    # K4: the decryption keys of embodiment 2 (opened here with the credit server's key).
    from protocols import wakeup as w
    from schemas.wakeup import KeyDistribution

    issuer = keys.load_actor(tier.settings.keys_dir, "issuer")
    assert issuer.seal_private is not None
    keys_sent = [crypto.open_sealed(issuer.seal_private, m.key_sealed,
                                    w.credit_key_context(m.encrypted_card_number))
                 for m in await messages(tier, "kessai.credit.keys", KeyDistribution)]
    assert keys_sent
    scanned = 0
    for spec in CATALOGUE:
        # Raw bytes: the session's broker also holds other tests' deliberately undecodable
        # records, and a secret in one of those would be a leak as well.
        for raw in await raw_values(tier, spec.name):
            scanned += 1
            for secret in secrets:
                if spec.name in exposed or secret.isdigit():
                    assert secret not in raw, f"{spec.name} carries a secret"
            if spec.name in exposed:
                assert not any(k in raw for k in keys_sent), f"{spec.name} carries a key"
                try:
                    msg = envelope.body_of(envelope.decode(raw))
                except KessaiError:
                    continue  # not a message: no fields to check
                fields = set(getattr(msg, "__dataclass_fields__", {}))
                assert not fields & set(FORBIDDEN_FIELDS), (spec.name, fields)
    assert scanned > 20
