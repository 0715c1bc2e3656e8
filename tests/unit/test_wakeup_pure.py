"""Seed 002 decisions as pure functions: the gateway's transaction machine (G3, G13), the
phone's certificate check (D6), the direction server's mailbox (W1, W2)."""

from __future__ import annotations

import dataclasses

import pytest

from agents.device import app
from agents.direction import mailbox
from agents.paygate import txn
from agents.paygate.tables import Tables
from kessai import crypto
from protocols import wakeup
from schemas.wakeup import (
    AuthRequest,
    GatewayCertificate,
    MailFetch,
    MailRequest,
    MethodChoice,
    SaleItem,
    ServerCertificate,
    TxnNumberRequest,
)

TABLES = Tables.from_config({
    "users": {"00001": {"device_id": "1234567", "card_number": "1525000012345678",
                        "expiration": "2031-12"}},
    "issuers": [["1525000000", "1525059999", "2a11111", "A"]],
    "merchants": [["1111111111", "A", "2a11111", ["L", "I", "R"]]],
})
REQ = TxnNumberRequest("pos-1", "s1", "1111111111", "00001", [SaleItem("Tea", 1, 1000)], 100,
                       1100, "JPY")


def pending() -> txn.Txn:
    step = txn.on_request(None, REQ, TABLES, 0, txn.Policy())
    assert step.state is not None
    return dataclasses.replace(step.state, session_id="sess")


def test_an_auth_request_without_authenticity_stops_and_sends_no_details():
    """G3 (a) / claim 1: the payment goes on only on "authenticity"."""
    step = txn.on_auth(pending(), AuthRequest("00001", "1234567", "sess", False, 0), "1234567",
                       TABLES, 1, txn.Policy())
    assert isinstance(step, txn.Step) and step.state is not None
    assert (step.state.status, step.state.reason) == (txn.STOPPED, "auth_result_invalid")
    assert not any(isinstance(e, txn.ToDevice) and type(e.message).__name__ ==
                   "TransactionDetails" for e in step.effects)


def test_a_redelivered_request_for_the_same_sale_issues_no_second_number():
    """G1/G12: the same sale again gets no second number and no second mail."""
    first = txn.on_request(None, REQ, TABLES, 0, txn.Policy())
    again = txn.on_request(first.state, REQ, TABLES, 5, txn.Policy())
    assert again.effects == () and again.state == first.state


def test_nothing_leaves_a_terminal_state():
    """G13: a stopped transaction takes no method, no tick changes it."""
    stopped = txn.stop(pending(), "confirmation_timeout", 1).state
    assert stopped is not None and stopped.terminal
    assert isinstance(txn.on_choice(stopped, MethodChoice("00001", "1234567", "sess", "L"), 2),
                      txn.Refusal)
    assert txn.on_tick(stopped, 10**12).effects == ()


CA = crypto.new_signing_key()
GW = crypto.new_signing_key()
ADDRESS = "https://paygate.kessai.example/pay"


def cert(**changes: object) -> GatewayCertificate:
    c = GatewayCertificate("paygate", ADDRESS, crypto.signing_public(GW), 10**13)
    return wakeup.issue_certificate(CA, dataclasses.replace(c, **changes))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["forged", "address", "expired", "subject"])
def test_the_phone_trusts_only_the_anchors_certificate_for_its_gateway(bad: str):
    """D6: a certificate not from the trust anchor, for another address, expired, or for
    another key → not trusted."""
    c = {"forged": wakeup.issue_certificate(crypto.new_signing_key(), cert()),
         "address": cert(address="https://evil.example/pay"),
         "expired": cert(not_after_ms=5),
         "subject": cert(public_key=crypto.signing_public(crypto.new_signing_key()))}[bad]
    with pytest.raises(wakeup.GatewayNotTrusted):
        wakeup.check_certificate(c, crypto.signing_public(CA), ADDRESS, "paygate",
                                 crypto.signing_public(GW), 1_000)
    wakeup.check_certificate(cert(), crypto.signing_public(CA), ADDRESS, "paygate",
                             crypto.signing_public(GW), 1_000)


def test_a_signature_under_the_user_certificate_domain_is_not_a_gateway_certificate():
    """D6, domain separation: the CA's signature over the same fields under the user
    certificates' domain (``kessai.certificates.DOMAIN``) does not make a gateway certificate,
    and the gateway certificate's signature does not verify as a user certificate's."""
    from kessai import certificates

    plain = GatewayCertificate("paygate", ADDRESS, crypto.signing_public(GW), 10**13)
    other = certificates.issue(CA, plain)
    assert other.ca_signature
    with pytest.raises(wakeup.GatewayNotTrusted):
        wakeup.check_certificate(other, crypto.signing_public(CA), ADDRESS, "paygate",
                                 crypto.signing_public(GW), 1_000)
    assert wakeup.certificate_bytes(plain) != certificates.certificate_bytes(plain)
    assert wakeup.issue_certificate(CA, plain).ca_signature != other.ca_signature


def test_the_phone_sends_nothing_when_the_certificate_fails():
    """D6: before the check nothing sensitive leaves; after a failure nothing at all."""
    uim = app.Uim("1234567", ADDRESS, "payment@paygate", "ca",
                  (app.Credential("CARD A", "00001", "ABCDEF"),))
    phone = app.Phone(app.Auth("00001", "CARD A", 0, 10**9),
                      app.Session("sess", "00001", "cert", 10**9))
    msg = ServerCertificate("1234567", "sess", cert())
    bad = app.on_certificate(uim, phone, msg, "not signed by the anchor", 1, app.Policy())
    assert isinstance(bad, app.Step)
    assert not [e for e in bad.effects if isinstance(e, app.Send)] and bad.state.session is None
    good = app.on_certificate(uim, phone, msg, None, 1, app.Policy())
    assert isinstance(good, app.Step)
    assert [type(e.message).__name__ for e in good.effects if isinstance(e, app.Send)] == \
        ["AuthRequest"]


def test_one_mail_per_transaction_and_only_for_its_device():
    """W1/W2: the mail goes into the named device's box once and is announced to it."""
    req = MailRequest("00001", "1234567", "T1")
    box, notice = mailbox.on_request({}, req, "payment@paygate", folded=False)
    assert notice is not None and notice.device_id == "1234567"
    assert mailbox.on_request(box, req, "payment@paygate", folded=False)[1] is None
    _, mail, problem = mailbox.on_fetch(box, MailFetch("1234567", notice.mail_id), "f1")
    assert problem is None and mail is not None
    assert mail.sender == "payment@paygate" and wakeup.START_PAYMENT_APP in mail.commands
    assert mailbox.on_fetch(box, MailFetch("1234567", "nope"), "f2")[2] == "no_such_mail"


def test_a_poll_is_due_only_for_a_buffered_user_id_and_a_waiting_sale():
    """P2/Sd4/E11: the POS's poll finds work only when the mobile terminal holds a user id
    and a service sale waits; the id's arrival alone sends nothing, the poll pairs them."""
    from agents.pos import sales
    from schemas.wakeup import PosSale, SaleItem, ShortRangeUserId

    items = [SaleItem("Mug", 1, 1800)]
    empty = sales.Pos()
    with_id = sales.on_user_id(empty, ShortRangeUserId("pos-1", "00001", "1234567"))
    assert with_id.out == () and not sales.poll_due(with_id.state)
    sold = sales.on_sale("pos-1", "1111111111", with_id.state,
                         PosSale("pos-1", "s1", items, 180))
    assert sold.out == () and sales.poll_due(sold.state)
    polled = sales.on_poll("pos-1", "1111111111", sold.state)
    assert [(m.user_id, m.sale_ref) for m in polled.out] == [("00001", "s1")]  # type: ignore[union-attr]
    assert not sales.poll_due(polled.state)
    card = sales.on_sale("pos-1", "1111111111", with_id.state,
                         PosSale("pos-1", "s2", items, 180, encrypted_card_user="00001"))
    assert not sales.poll_due(card.state)  # embodiment 2 takes no handed-over id
