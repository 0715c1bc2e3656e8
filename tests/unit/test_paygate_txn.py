"""One transaction at the payment server (seed 002, Fig. 19, G1–G13), stated exactly: the
state each input leaves and every effect. Written against the mutants `make mutate` found
alive in agents/paygate/txn.py (its other tests are in test_wakeup_pure.py)."""

from __future__ import annotations

import dataclasses

import pytest

from agents.paygate import txn
from agents.paygate.txn import (
    Policy,
    Record,
    Refusal,
    RequestCredit,
    Step,
    ToDevice,
    ToDirection,
    ToPos,
    Txn,
)
from kessai.money import Money
from schemas.wakeup import (
    AuthRequest,
    CompletionNotice,
    CreditResponse,
    GatewayCertificate,
    MailRequest,
    MethodChoice,
    PaymentMethods,
    PosCompletion,
    ProceedRequest,
    SaleItem,
    ServerCertificate,
    SessionError,
    SessionOpen,
    TransactionDetails,
    TxnNumber,
)
from tests.unit.test_wakeup_pure import REQ, TABLES

P = Policy(device_wait_ms=1_000, confirm_ms=2_000, method_ms=3_000)
NUMBER = txn.transaction_number("1111111111", "pos-1", "s1")
CERT = GatewayCertificate("paygate", "https://gw", b"k", 10**13, b"sig")


def fresh(**changes: object) -> Txn:
    t = Txn(NUMBER, "00001", "1234567", "pos-1", "s1", "1111111111", "A", [["Tea", 1, 1000]],
            100, 1100, "JPY", 0, deadline_ms=P.device_wait_ms)
    return dataclasses.replace(t, **changes)  # type: ignore[arg-type]


def test_g1_the_number_is_twelve_digits_fixed_per_sale() -> None:
    # A known answer: the first 15 hex digits of sha256("1111111111/pos-1/s1"), mod 10^12.
    assert NUMBER == "647290190186"
    assert txn.transaction_number("1", "p", "s") == txn.transaction_number("1", "p", "s")
    others = {txn.transaction_number(m, p, s) for m, p, s in (
        ("1111111112", "pos-1", "s1"), ("1111111111", "pos-2", "s1"),
        ("1111111111", "pos-1", "s2"))}
    assert NUMBER not in others and len(others) == 3


def test_se1_se4_a_request_gets_its_number_and_the_mail_is_asked_for() -> None:
    step = txn.on_request(None, REQ, TABLES, 0, P)
    assert step == Step(fresh(), (ToPos(TxnNumber("pos-1", "s1", NUMBER)),
                                  ToDirection(MailRequest("00001", "1234567", NUMBER))))


@pytest.mark.parametrize(("change", "reason"), [
    ({"user_id": "nobody"}, "unknown_user"),
    ({"merchant_code": "9999999999"}, "unknown_merchant"),
    ({"items": []}, "bad_transaction_info"),
    ({"items": [SaleItem("Tea", 0, 1000)], "total": 100}, "bad_transaction_info"),
    ({"items": [SaleItem("Tea", 1, -1)], "total": 99}, "bad_transaction_info"),
    ({"tax": -1, "total": 999}, "bad_transaction_info"),
    ({"total": 1101}, "bad_transaction_info"),
])
def test_a_request_that_cannot_be_a_transaction_is_rejected_to_the_pos(
        change: dict[str, object], reason: str) -> None:
    req = dataclasses.replace(REQ, **change)  # type: ignore[arg-type]
    step = txn.on_request(None, req, TABLES, 0, P)
    assert step == Step(None, (ToPos(PosCompletion("pos-1", "s1", "", "REJECTED", reason)),))


def test_a_free_item_is_a_valid_sale() -> None:
    req = dataclasses.replace(REQ, items=[SaleItem("Tea", 1, 1000), SaleItem("Bag", 1, 0)])
    step = txn.on_request(None, req, TABLES, 0, P)
    assert step.state is not None and step.state.items == [["Tea", 1, 1000], ["Bag", 1, 0]]


def test_g11a_one_pending_transaction_per_user_then_a_new_one_after_the_end() -> None:
    other = dataclasses.replace(REQ, sale_ref="s2")
    busy = txn.on_request(fresh(), other, TABLES, 5, P)
    assert busy == Step(None, (ToPos(PosCompletion("pos-1", "s2", "", "REJECTED",
                                                   "user_busy")),))
    done = fresh(status=txn.COMPLETED)
    step = txn.on_request(done, other, TABLES, 5, P)
    assert step.state is not None and step.state.sale_ref == "s2"
    assert step.state.transaction_number == txn.transaction_number("1111111111", "pos-1", "s2")


def test_sc1_the_session_opens_for_the_gateways_address_and_gets_the_certificate() -> None:
    msg = SessionOpen("00001", "1234567", "sess", "https://gw")
    step = txn.on_session_open(fresh(), msg, "https://gw", CERT)
    assert step == Step(fresh(session_id="sess"),
                        (ToDevice(ServerCertificate("1234567", "sess", CERT)),))
    # The same session again (a redelivery) is answered again; another is refused.
    assert txn.on_session_open(fresh(session_id="sess"), msg, "https://gw", CERT) == step
    other = txn.on_session_open(fresh(session_id="sess"), dataclasses.replace(
        msg, session_id="s2"), "https://gw", CERT)
    assert isinstance(other, Refusal) and other.reason == "session_mismatch"
    wrong = txn.on_session_open(fresh(), msg, "https://other", CERT)
    assert isinstance(wrong, Refusal) and wrong.reason == "wrong_address"


@pytest.mark.parametrize(("state", "reason"), [
    (None, "unknown_transaction"), (fresh(status=txn.AWAITING_CONFIRMATION), "out_of_sequence")])
def test_a_session_message_out_of_its_transaction_is_refused(state: Txn | None,
                                                              reason: str) -> None:
    msg = SessionOpen("00001", "1234567", "sess", "https://gw")
    out = txn.on_session_open(state, msg, "https://gw", CERT)
    assert isinstance(out, Refusal) and out.reason == reason


def opened() -> Txn:
    return fresh(session_id="sess")


def auth(device: str = "1234567", session: str = "sess") -> AuthRequest:
    return AuthRequest("00001", device, session, True, 0)


def test_se9_se12_the_registered_device_gets_the_details_and_the_confirm_timer_starts() -> None:
    step = txn.on_auth(opened(), auth(), "1234567", TABLES, 10, P)
    details = TransactionDetails("1234567", "sess", NUMBER, "A", [SaleItem("Tea", 1, 1000)],
                                 100, Money(1100, "JPY"))
    assert step == Step(fresh(session_id="sess", status=txn.AWAITING_CONFIRMATION,
                              deadline_ms=10 + P.confirm_ms), (ToDevice(details),))


@pytest.mark.parametrize(("device", "signer"), [("7654321", "7654321"), ("1234567", "7654321")])
def test_g3b_another_device_stops_the_transaction(device: str, signer: str) -> None:
    step = txn.on_auth(opened(), auth(device), signer, TABLES, 10, P)
    assert isinstance(step, Step) and step.state is not None
    assert (step.state.status, step.state.reason, step.state.device_id) == (
        txn.STOPPED, "device_id_mismatch", signer)
    assert step.effects[0] == ToPos(PosCompletion("pos-1", "s1", NUMBER, "STOPPED",
                                                  "device_id_mismatch"))


def test_an_auth_request_of_another_session_is_refused() -> None:
    out = txn.on_auth(opened(), auth(session="other"), "1234567", TABLES, 10, P)
    assert isinstance(out, Refusal) and out.reason == "session_mismatch"


def test_se11_a_stop_tells_the_pos_the_phone_and_records() -> None:
    step = txn.stop(opened(), "why", 5)
    assert step == Step(fresh(session_id="sess", status=txn.STOPPED, reason="why",
                              deadline_ms=None), (
        ToPos(PosCompletion("pos-1", "s1", NUMBER, "STOPPED", "why")),
        ToDevice(SessionError("1234567", "sess", "why")), Record()))
    # Before a session is open, there is no phone to tell.
    assert txn.stop(fresh(), "why", 5).effects == (
        ToPos(PosCompletion("pos-1", "s1", NUMBER, "STOPPED", "why")), Record())


def confirming(deadline: int = 2_000) -> Txn:
    return fresh(session_id="sess", status=txn.AWAITING_CONFIRMATION, deadline_ms=deadline)


def proceed() -> ProceedRequest:
    return ProceedRequest("00001", "1234567", "sess")


def test_se13_se14_the_confirmation_in_time_gets_the_allowed_methods() -> None:
    step = txn.on_proceed(confirming(), proceed(), TABLES, 2_000, P)
    assert step == Step(fresh(session_id="sess", status=txn.AWAITING_METHOD,
                              methods=["L", "I", "R"], deadline_ms=2_000 + P.method_ms),
                        (ToDevice(PaymentMethods("1234567", "sess", ["L", "I", "R"])),))


def test_g5_a_late_confirmation_stops_even_before_the_tick() -> None:
    step = txn.on_proceed(confirming(), proceed(), TABLES, 2_001, P)
    assert isinstance(step, Step) and step.state is not None
    assert (step.state.status, step.state.reason) == (txn.STOPPED, "confirmation_timeout")
    no_deadline = txn.on_proceed(dataclasses.replace(confirming(), deadline_ms=None),
                                 proceed(), TABLES, 10**12, P)
    assert isinstance(no_deadline, Step) and no_deadline.state is not None
    assert no_deadline.state.status == txn.AWAITING_METHOD


def test_g6_no_method_for_the_merchant_and_card_stops_with_the_reason() -> None:
    state = dataclasses.replace(confirming(), merchant_code="2222222222")
    step = txn.on_proceed(state, proceed(), TABLES, 1, P)
    assert isinstance(step, Step) and step.state is not None
    assert (step.state.status, step.state.reason) == (txn.STOPPED, "no_payment_method")


def choosing(deadline: int = 3_000) -> Txn:
    return fresh(session_id="sess", status=txn.AWAITING_METHOD, methods=["L", "R"],
                 deadline_ms=deadline)


def choice(method: str = "R") -> MethodChoice:
    return MethodChoice("00001", "1234567", "sess", method)


def test_se15_an_offered_method_in_time_asks_for_credit_once() -> None:
    step = txn.on_choice(choosing(), choice(), 3_000)
    assert step == Step(fresh(session_id="sess", status=txn.CREDIT_REQUESTED,
                              methods=["L", "R"], method="R", deadline_ms=None),
                        (RequestCredit(),))
    assert isinstance(txn.on_choice(step.state, choice(), 3_001), Refusal)  # type: ignore[union-attr]


@pytest.mark.parametrize(("method", "now", "reason"), [
    ("I", 1, "method_not_offered"), ("R", 3_001, "method_timeout")])
def test_g7_a_method_not_offered_or_late_stops(method: str, now: int, reason: str) -> None:
    step = txn.on_choice(choosing(), choice(method), now)
    assert isinstance(step, Step) and step.state is not None
    assert (step.state.status, step.state.reason) == (txn.STOPPED, reason)
    assert RequestCredit() not in step.effects


def test_a_choice_without_a_deadline_is_taken() -> None:
    step = txn.on_choice(choosing(), choice(), 10**12)
    assert isinstance(step, Step) and step.state is not None
    assert step.state.status == txn.STOPPED  # the deadline holds
    step = txn.on_choice(dataclasses.replace(choosing(), deadline_ms=None), choice(), 10**12)
    assert isinstance(step, Step) and step.state is not None
    assert step.state.status == txn.CREDIT_REQUESTED


def crediting() -> Txn:
    return fresh(session_id="sess", status=txn.CREDIT_REQUESTED, methods=["L", "R"],
                 method="R", deadline_ms=None)


def test_se16_an_approval_completes_to_the_pos_and_the_phone_and_records() -> None:
    msg = CreditResponse(NUMBER, f"pg/{NUMBER}", True, "", "A1")
    step = txn.on_credit(crediting(), msg, 9)
    done = dataclasses.replace(crediting(), status=txn.COMPLETED)
    assert step == Step(done, (
        ToPos(PosCompletion("pos-1", "s1", NUMBER, "COMPLETED", method="R")),
        ToDevice(CompletionNotice("1234567", "sess", NUMBER, "COMPLETED")), Record()))


def test_se16_a_refusal_stops_with_the_credit_servers_reason() -> None:
    step = txn.on_credit(crediting(), CreditResponse(NUMBER, "k", False, "limit"), 9)
    assert isinstance(step, Step) and step.state is not None
    assert (step.state.status, step.state.reason) == (txn.STOPPED, "credit_refused:limit")


def test_a_credit_response_for_another_transaction_is_refused() -> None:
    out = txn.on_credit(crediting(), CreditResponse("000000000000", "k", True, ""), 9)
    assert isinstance(out, Refusal) and out.reason == "unknown_transaction"


@pytest.mark.parametrize(("state", "reason"), [
    (fresh(), "device_timeout"), (confirming(1_000), "confirmation_timeout"),
    (choosing(1_000), "method_timeout")])
def test_g5_each_wait_ends_at_its_deadline_with_its_reason(state: Txn, reason: str) -> None:
    assert txn.on_tick(state, 999) == Step(state)
    step = txn.on_tick(state, 1_000)
    assert step.state is not None and (step.state.status, step.state.reason) == (
        txn.STOPPED, reason)
    assert RequestCredit() not in step.effects


def test_a_tick_without_a_deadline_or_transaction_changes_nothing() -> None:
    assert txn.on_tick(None, 10**12) == Step(None)
    assert txn.on_tick(crediting(), 10**12) == Step(crediting())
    odd = dataclasses.replace(crediting(), deadline_ms=5)
    step = txn.on_tick(odd, 5)
    assert step.state is not None and step.state.reason == "timeout"


def test_the_state_survives_its_wire_form() -> None:
    state = dataclasses.replace(choosing(), seen=["m1"], trace_id="t")
    assert Txn.from_wire(state.to_wire()) == state
    assert state.sale_items == [SaleItem("Tea", 1, 1000)]


def test_a_confirmation_of_another_session_or_out_of_its_phase_is_refused() -> None:
    other = ProceedRequest("00001", "1234567", "other")
    out = txn.on_proceed(confirming(), other, TABLES, 1, P)
    assert isinstance(out, Refusal) and out.reason == "session_mismatch"
    out = txn.on_proceed(choosing(), proceed(), TABLES, 1, P)
    assert isinstance(out, Refusal) and out.reason == "out_of_sequence"
    out = txn.on_choice(choosing(), MethodChoice("00001", "1234567", "other", "R"), 1)
    assert isinstance(out, Refusal) and out.reason == "session_mismatch"


def test_a_sale_without_tax_is_a_valid_sale() -> None:
    step = txn.on_request(None, dataclasses.replace(REQ, tax=0, total=1000), TABLES, 0, P)
    assert step.state is not None and (step.state.tax, step.state.total) == (0, 1000)


@pytest.mark.parametrize("state", [None, "stopped", "choosing"])
def test_a_credit_response_outside_a_credit_request_is_refused(state: str | None) -> None:
    current = {None: None, "stopped": dataclasses.replace(crediting(), status=txn.STOPPED),
               "choosing": choosing()}[state]
    out = txn.on_credit(current, CreditResponse(NUMBER, "k", True, ""), 9)
    assert isinstance(out, Refusal)
    assert out.reason == ("unknown_transaction" if state is None else "out_of_sequence")
