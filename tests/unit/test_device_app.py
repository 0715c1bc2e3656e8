"""The phone's payment application (seed 002, Figs. 12, 14, 15; D1–D11, N2/N3), stated
exactly: the state each input leaves and every message it sends. Screens are asserted by their
name (the stable code) and, where the claim is about what the user is shown (the shop and the
total, D8; the methods, D9; the abort notice, D3/D7), by their text. Written against the
mutants `make mutate` found alive in agents/device/app.py."""

from __future__ import annotations

import dataclasses

import pytest

from agents.device import app
from agents.device.app import (
    ABORTED_TEXT,
    COMPLETED_TEXT,
    GATEWAY,
    MAIL_FETCH,
    SHORTRANGE,
    Auth,
    Credential,
    Phone,
    Policy,
    Refusal,
    Send,
    Session,
    Show,
    Step,
    Uim,
)
from kessai.money import Money
from protocols.wakeup import START_PAYMENT_APP
from schemas.wakeup import (
    AuthRequest,
    CompletionNotice,
    ConfirmationMail,
    ConfirmationReply,
    Mail,
    MailFetch,
    MethodChoice,
    PaymentMethods,
    ProceedRequest,
    ReceptionNotice,
    SaleItem,
    ServerCertificate,
    SessionError,
    SessionOpen,
    ShortRangeUserId,
    TransactionDetails,
)
from tests.unit.test_wakeup_pure import cert

UIM = Uim("dev-1", "https://gw/pay", "payment@paygate", "ca",
          (Credential("CARD A", "00001", "ABCDEF"), Credential("CARD B", "00002", "GHIJKL")))
P = Policy(response_ms=1_000, auth_ttl_ms=10_000)
AUTH = Auth("00001", "CARD A", 0, 10_000)


def screens(step: Step | Refusal) -> list[str]:
    assert isinstance(step, Step)
    return [e.screen for e in step.effects if isinstance(e, Show)]


def sends(step: Step | Refusal) -> list[Send]:
    assert isinstance(step, Step)
    return [e for e in step.effects if isinstance(e, Send)]


def test_uim_and_phone_from_their_stored_forms() -> None:
    uim = Uim.from_config({"device_id": 7, "gateway_address": "https://gw/pay",
                           "gateway_mail": "payment@paygate",
                           "credentials": [{"card": "CARD A", "user_id": 1, "password": 2}]})
    assert uim == Uim("7", "https://gw/pay", "payment@paygate", "ca",
                      (Credential("CARD A", "1", "2"),))
    assert uim.cards == ["CARD A"] and "2" not in repr(uim.credentials[0])
    phone = Phone(AUTH, Session("m1", "00001", "choose", 5, ["L"]), ["m1"], ["x"],
                  {"request_ref": "r", "user_id": "00001"})
    assert Phone.from_wire(phone.to_wire()) == phone
    assert Phone.from_wire({"auth": None, "session": None}) == Phone()


# -- Fig. 12: local authentication -----------------------------------------------------------

def test_d1_d2_a_matching_pair_stores_the_result_and_hands_the_stored_user_id_over() -> None:
    step = app.login(UIM, Phone(), "CARD B", "00002", "GHIJKL", "pos-1", 100, P)
    assert step.state == Phone(Auth("00002", "CARD B", 100, 100 + P.auth_ttl_ms))
    assert sends(step) == [Send(SHORTRANGE, ShortRangeUserId("pos-1", "00002", "dev-1"),
                                "pos-1")]
    assert screens(step) == ["handed_over"]


@pytest.mark.parametrize(("card", "user", "password"), [
    ("CARD A", "00001", "GHIJKL"), ("CARD A", "00002", "ABCDEF"), ("CARD C", "00001", "ABCDEF")],
    ids=["password", "user", "card"])
def test_d1_a_mismatch_sends_nothing_and_stores_nothing(card: str, user: str,
                                                        password: str) -> None:
    step = app.login(UIM, Phone(), card, user, password, "pos-1", 100, P)
    assert step.state == Phone() and sends(step) == [] and screens(step) == ["rejected"]


# -- Fig. 14: the notice, the mail, the automatic start ----------------------------------------

def mail(**changes: object) -> Mail:
    m = Mail("dev-1", "m1", "payment@paygate", [START_PAYMENT_APP])
    return dataclasses.replace(m, **changes)  # type: ignore[arg-type]


def test_sb1_a_notice_fetches_its_mail_once() -> None:
    step = app.on_notice(UIM, Phone(), ReceptionNotice("dev-1", "m1"))
    assert step == Step(Phone(), (Send(MAIL_FETCH, MailFetch("dev-1", "m1"), "dev-1"),))
    assert app.on_notice(UIM, Phone(mails=["m1"]), ReceptionNotice("dev-1", "m1")) == \
        Step(Phone(mails=["m1"]))


def test_d4_d5_the_gateways_mail_with_the_command_opens_a_session() -> None:
    step = app.on_mail(UIM, Phone(AUTH), mail(), 100, P)
    assert step.state == Phone(AUTH, Session("m1", "00001", "cert", 100 + P.response_ms),
                               ["m1"])
    assert sends(step) == [Send(GATEWAY, SessionOpen("00001", "dev-1", "m1", "https://gw/pay"),
                                "00001")]
    assert screens(step) == ["wakeup"]
    assert app.on_mail(UIM, step.state, mail(), 101, P) == Step(step.state)  # once


@pytest.mark.parametrize("bad", [{"sender": "evil@x"}, {"commands": ["other"]},
                                 {"device_id": "dev-2"}])
def test_d4_any_other_mail_is_dropped_with_no_effect(bad: dict[str, object]) -> None:
    assert app.on_mail(UIM, Phone(AUTH), mail(**bad), 100, P) == Step(Phone(AUTH))


def test_claim_1_without_a_stored_result_the_mail_aborts_and_sends_nothing() -> None:
    expired = Phone(Auth("00001", "CARD A", 0, 100))
    step = app.on_mail(UIM, expired, mail(), 100, P)
    assert step == Step(Phone(mails=["m1"]), (Show("aborted", ABORTED_TEXT),))


def test_the_mails_acted_on_are_bounded_to_the_last_32() -> None:
    many = Phone(mails=[f"x{i}" for i in range(32)])
    step = app.on_mail(UIM, many, mail(), 100, P)
    assert step.state.mails == [f"x{i}" for i in range(1, 32)] + ["m1"]


# -- Fig. 15: the session ----------------------------------------------------------------------

def at(phase: str, deadline: int | None = 5_000, methods: list[str] | None = None) -> Phone:
    return Phone(AUTH, Session("m1", "00001", phase, deadline, methods or []))


def test_d6_d7_after_the_certificate_the_result_goes_and_the_timer_restarts() -> None:
    msg = ServerCertificate("dev-1", "m1", cert())
    step = app.on_certificate(UIM, at("cert"), msg, None, 200, P)
    assert step == Step(at("auth", 200 + P.response_ms), (
        Send(GATEWAY, AuthRequest("00001", "dev-1", "m1", True, 0), "00001"),))
    # The result expired meanwhile, or belongs to another user: abort, send nothing.
    late = app.on_certificate(UIM, at("cert"), msg, None, 10_000, P)
    assert late == Step(Phone(), (Show("aborted", ABORTED_TEXT),))
    other = dataclasses.replace(at("cert"), auth=Auth("00002", "CARD B", 0, 10_000))
    assert screens(app.on_certificate(UIM, other, msg, None, 200, P)) == ["aborted"]
    wrong = app.on_certificate(UIM, at("auth"), msg, None, 200, P)
    assert isinstance(wrong, Refusal) and wrong.reason == "out_of_sequence"
    bad = app.on_certificate(UIM, at("cert"), dataclasses.replace(msg, session_id="m2"), None,
                             200, P)
    assert isinstance(bad, Refusal) and bad.reason == "session_mismatch"


def test_d8_the_shop_and_the_total_are_shown_with_agree_and_not_agree() -> None:
    msg = TransactionDetails("dev-1", "m1", "T1", "Shop A",
                             [SaleItem("Tea", 2, 300), SaleItem("Cake", 1, 500)], 100,
                             Money(1200, "JPY"))
    step = app.on_details(at("auth"), msg)
    assert step == Step(at("details", None), (Show(
        "details", "This transaction is conducted at shop Shop A. Tea x2 300; Cake x1 500; "
        f"tax 100. Total amount is {Money(1200, 'JPY')}.", ("Agree", "Not agree")),))
    assert isinstance(app.on_details(at("cert"), msg), Refusal)


def test_d8_agree_asks_for_the_methods_and_not_agree_stops_locally() -> None:
    step = app.agree(UIM, at("details", None), 300, P)
    assert step.state == at("proceed", 300 + P.response_ms)
    assert sends(step) == [Send(GATEWAY, ProceedRequest("00001", "dev-1", "m1"), "00001")]
    assert screens(app.agree(UIM, at("auth"), 300, P)) == ["error"]
    assert app.agree(UIM, Phone(), 300, P).state == Phone()
    stopped = app.not_agree(at("details", None))
    assert stopped == Step(Phone(AUTH), (Show("stopped", "Payment processing stopped."),))
    assert app.not_agree(at("auth")) == Step(at("auth"))
    assert app.not_agree(Phone()) == Step(Phone())


def test_d9_the_offered_methods_are_listed_and_only_they_can_be_chosen() -> None:
    step = app.on_methods(at("proceed"), PaymentMethods("dev-1", "m1", ["L", "pB"]))
    assert step == Step(at("choose", None, ["L", "pB"]), (Show(
        "methods", "Please select a payment method.", ("L: lump sum", "pB: bonus (partial)")),))
    assert isinstance(app.on_methods(at("details"), PaymentMethods("dev-1", "m1", [])), Refusal)
    chosen = app.choose(UIM, step.state, "pB", 400, P)
    assert chosen.state == at("completing", 400 + P.response_ms, ["L", "pB"])
    assert sends(chosen) == [Send(GATEWAY, MethodChoice("00001", "dev-1", "m1", "pB"), "00001")]
    refused = app.choose(UIM, step.state, "R", 400, P)
    assert refused.state == step.state and sends(refused) == [] and screens(refused) == ["error"]
    assert screens(app.choose(UIM, at("details"), "L", 400, P)) == ["error"]
    assert app.choose(UIM, Phone(), "L", 400, P).state == Phone()


def test_d10_the_completion_closes_the_session() -> None:
    msg = CompletionNotice("dev-1", "m1", "T1", "COMPLETED")
    assert app.on_completion(at("completing"), msg) == Step(
        Phone(AUTH), (Show("completed", COMPLETED_TEXT),))
    assert isinstance(app.on_completion(at("choose"), msg), Refusal)


def test_the_gateways_error_closes_only_its_own_session() -> None:
    step = app.on_error(at("choose"), SessionError("dev-1", "m1", "method_timeout"))
    assert step.state == Phone(AUTH) and screens(step) == ["error"]
    assert "method_timeout" in step.effects[0].text  # type: ignore[union-attr]
    other = app.on_error(at("choose"), SessionError("dev-1", "m2", "x"))
    assert isinstance(other, Refusal) and other.reason == "session_mismatch"
    assert isinstance(app.on_error(Phone(), SessionError("dev-1", "m1", "x")), Refusal)


def test_d7_no_answer_by_the_deadline_aborts_and_d3_the_result_expires() -> None:
    state = at("proceed", 5_000)
    assert app.on_tick(state, 4_999) == Step(state)
    assert app.on_tick(state, 5_000) == Step(Phone(AUTH), (Show("aborted", ABORTED_TEXT),))
    reading = at("details", None)
    assert app.on_tick(reading, 9_999) == Step(reading)  # the user is reading: no timer
    assert app.on_tick(reading, 10_000) == Step(dataclasses.replace(reading, auth=None))
    assert app.expire(Phone(AUTH), 9_999) == Phone(AUTH)
    assert app.expire(Phone(AUTH), 10_000) == Phone()


def test_the_next_deadline_is_the_earlier_of_the_results_expiry_and_the_timer() -> None:
    assert app.next_deadline(Phone()) is None
    assert app.next_deadline(Phone(AUTH)) == 10_000
    assert app.next_deadline(at("proceed", 5_000)) == 5_000
    assert app.next_deadline(at("proceed", 20_000)) == 10_000
    assert app.next_deadline(Phone(session=Session("m1", "00001", "cert", 7))) == 7
    assert app.next_deadline(at("details", None)) == 10_000


# -- embodiment 2: the confirmation mail and the reply ----------------------------------------

CONFIRM = ConfirmationMail("dev-1", "00001", "r1", "Shop A", Money(1200, "JPY"))


def test_n2_the_confirmation_is_shown_for_this_device_only() -> None:
    step = app.on_confirmation(UIM, Phone(), CONFIRM)
    assert step.state == Phone(confirm={"request_ref": "r1", "user_id": "00001"})
    assert screens(step) == ["confirm"] and step.effects[0].options == ("Reply", "Ignore")  # type: ignore[union-attr]
    text = step.effects[0].text  # type: ignore[union-attr]
    assert str(Money(1200, "JPY")) in text and "Shop A" in text
    other = dataclasses.replace(CONFIRM, device_id="dev-2")
    assert app.on_confirmation(UIM, Phone(), other) == Step(Phone())


def test_n3_the_reply_carries_the_sealed_password_once() -> None:
    waiting = app.on_confirmation(UIM, Phone(), CONFIRM).state
    step = app.reply(UIM, waiting, b"sealed")
    assert step.state == Phone()
    assert sends(step) == [Send(GATEWAY, ConfirmationReply("00001", "dev-1", "r1", b"sealed"),
                                "00001")]
    assert screens(step) == ["replied"]
    nothing = app.reply(UIM, Phone(), b"sealed")
    assert nothing.state == Phone() and sends(nothing) == [] and screens(nothing) == ["error"]


def test_the_uim_names_its_trust_anchor() -> None:
    uim = Uim.from_config({"device_id": "d", "gateway_address": "a", "gateway_mail": "m",
                           "trust_anchor": "ca-2", "credentials": []})
    assert uim.trust_anchor == "ca-2"


def test_a_mail_that_aborts_closes_a_session_left_open() -> None:
    stale = Phone(Auth("00001", "CARD A", 0, 100), Session("m0", "00001", "details", None))
    step = app.on_mail(UIM, stale, mail(), 100, P)
    assert step == Step(Phone(mails=["m1"]), (Show("aborted", ABORTED_TEXT),))


def test_each_step_shows_its_screen() -> None:
    failed = app.on_certificate(UIM, at("cert"), ServerCertificate("dev-1", "m1", cert()),
                                "forged", 1, P)
    assert screens(failed) == ["error"]
    assert screens(app.agree(UIM, at("details", None), 1, P)) == ["waiting"]
    assert screens(app.choose(UIM, at("choose", None, ["L"]), "L", 1, P)) == ["waiting"]


def test_a_method_without_a_known_name_is_offered_by_its_code() -> None:
    step = app.on_methods(at("proceed"), PaymentMethods("dev-1", "m1", ["Z9"]))
    assert isinstance(step, Step) and step.effects[0].options == ("Z9: Z9",)  # type: ignore[union-attr]


def test_history_goes_to_the_gateway_only_for_an_unexpired_authentication() -> None:
    """V4 (the phone's history page): the request names the authenticated user and this
    device, keyed by the user; without a stored authentication, or once it expired (D3),
    nothing is sent and the user is told to log in."""
    from agents.device.app import HISTORY
    from schemas.wakeup import HistoryRequest

    step = app.history(UIM, Phone(auth=AUTH), 9_999, "req-1")
    assert isinstance(step, Step)
    assert step.effects == (Send(HISTORY, HistoryRequest("00001", "dev-1", "req-1"), "00001"),)
    assert step.state.auth == AUTH

    for state, now in ((Phone(), 0), (Phone(auth=AUTH), 10_000)):
        step = app.history(UIM, state, now, "req-2")
        assert screens(step) == ["history_refused"]
        assert not [e for e in step.effects if isinstance(e, Send)]
        assert step.state.auth is None


def test_a_login_with_no_pos_stores_the_result_and_names_the_user_for_the_web_shop() -> None:
    """V3: no POS at hand. The stored result (D2) is what answers the wake-up that follows;
    nothing is sent, and the screen tells the user the id to type at the web shop."""
    step = app.login(UIM, Phone(), "CARD B", "00002", "GHIJKL", "", 100, P)
    assert isinstance(step, Step)
    assert step.state == Phone(auth=Auth("00002", "CARD B", 100, 100 + P.auth_ttl_ms))
    assert step.effects == (Show("authenticated", "Authenticated as 00002: enter it at the "
                                                  "web shop's checkout."),)
