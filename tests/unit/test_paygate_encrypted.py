"""Embodiment 2 at the gateway as pure decisions (seed 002, Fig. 27; K1–K4, claims 22–33),
stated exactly: every state and effect. Written when `make mutate` first ran over
agents/paygate/encrypted.py and found no fast test of it."""

from __future__ import annotations

import dataclasses

import pytest

from agents.paygate import encrypted as enc
from agents.paygate.encrypted import Confirm, Issue, Policy, Refuse, Request, Step
from agents.paygate.tables import Tables
from kessai.money import Money
from schemas.wakeup import CardNumberRequest, ConfirmationMail, ConfirmationReply

NOW = 1_700_000_000_000  # 2023-11
TABLES = Tables.from_config({
    "users": {
        "00001": {"device_id": "dev-1", "card_number": "1525000012345678",
                  "expiration": "2031-12"},
        "00002": {"device_id": "dev-2", "card_number": "", "expiration": "2031-12"},
        "00003": {"device_id": "dev-3", "card_number": "1525000012345678",
                  "expiration": "2023-10"},
        "00004": {"device_id": "dev-4", "card_number": "9999000012345678",
                  "expiration": "2023-11"},
    },
    "issuers": [["1525000000", "1525059999", "2a11111", "A"]],
    "merchants": [["1111111111", "Shop A", "2a11111", ["L"]]],
})
AMOUNT = Money(1200, "JPY")


def request(ref: str = "r1", user: str = "00001", merchant: str = "1111111111"
            ) -> CardNumberRequest:
    return CardNumberRequest("pos-1", ref, user, merchant, AMOUNT)


def base(ref: str = "r1", user: str = "00001", **changes: object) -> Request:
    r = Request(ref, "pos-1", user, "1111111111", 1200, "JPY", enc.REFUSED)
    return dataclasses.replace(r, **changes)  # type: ignore[arg-type]


def reply(ref: str = "r1", device: str = "dev-1") -> ConfirmationReply:
    return ConfirmationReply("00001", device, ref, b"sealed")


@pytest.mark.parametrize(("user", "reason"), [
    ("nobody", "user_not_found"), ("00002", "no_card"), ("00003", "card_expired")])
def test_k1_a_user_without_a_usable_card_is_refused(user: str, reason: str) -> None:
    step = enc.on_request(None, request(user=user), TABLES, NOW, Policy())
    assert step == Step(base(user=user, reason=reason), (Refuse(reason),))


def test_a_card_valid_through_this_month_and_an_unknown_merchant() -> None:
    """The card of 00004 expires this month: still good. The merchant is checked after it."""
    step = enc.on_request(None, request(user="00004"), TABLES, NOW, Policy(confirm=False))
    assert step == Step(base(user="00004", status=enc.ISSUED), (Issue(""),))  # no issuer range
    unknown = enc.on_request(None, request(merchant="2222222222"), TABLES, NOW, Policy())
    assert unknown.effects == (Refuse("unknown_merchant"),)
    assert unknown.state is not None and unknown.state.reason == "unknown_merchant"


def test_k2_the_user_is_asked_to_confirm_with_a_deadline() -> None:
    step = enc.on_request(None, request(), TABLES, NOW, Policy(reply_ms=5_000))
    assert step == Step(base(status=enc.AWAITING_REPLY, deadline_ms=NOW + 5_000), (Confirm(
        ConfirmationMail("dev-1", "00001", "r1", "Shop A", AMOUNT)),))


def test_without_confirmation_the_card_is_issued_at_once_to_its_issuer() -> None:
    step = enc.on_request(None, request(), TABLES, NOW, Policy(confirm=False))
    assert step == Step(base(status=enc.ISSUED), (Issue("2a11111"),))


def test_the_same_request_again_changes_nothing_and_another_waits_its_turn() -> None:
    pending = enc.on_request(None, request(), TABLES, NOW, Policy()).state
    assert enc.on_request(pending, request(), TABLES, NOW + 1, Policy()) == Step(pending)
    busy = enc.on_request(pending, request("r2"), TABLES, NOW + 1, Policy())
    assert busy == Step(pending, (Refuse("user_busy"),))
    # Once the first is over, a new request is handled afresh.
    done = dataclasses.replace(pending, status=enc.ISSUED)  # type: ignore[arg-type]
    fresh = enc.on_request(done, request("r2"), TABLES, NOW + 1, Policy(confirm=False))
    assert fresh == Step(base("r2", status=enc.ISSUED), (Issue("2a11111"),))


def pending(reply_ms: int = 5_000) -> Request:
    state = enc.on_request(None, request(), TABLES, NOW, Policy(reply_ms=reply_ms)).state
    assert state is not None
    return state


def test_k2_a_reply_in_time_with_the_password_from_the_registered_device_issues() -> None:
    step = enc.on_reply(pending(), reply(), True, "dev-1", TABLES, NOW + 5_000)
    assert step == Step(base(status=enc.ISSUED), (Issue("2a11111"),))


@pytest.mark.parametrize(("password_ok", "signer", "device"), [
    (False, "dev-1", "dev-1"), (True, "dev-2", "dev-1"), (True, "dev-1", "dev-2")],
    ids=["password", "signer", "device"])
def test_k2_a_wrong_password_or_another_device_cancels(password_ok: bool, signer: str,
                                                       device: str) -> None:
    step = enc.on_reply(pending(), reply(device=device), password_ok, signer, TABLES, NOW + 1)
    assert step == Step(base(reason="bad_password"), (Refuse("bad_password"),))


def test_k2_a_late_reply_cancels_even_before_the_tick() -> None:
    step = enc.on_reply(pending(), reply(), True, "dev-1", TABLES, NOW + 5_001)
    assert step == Step(base(reason="no_reply"), (Refuse("no_reply"),))


def test_a_reply_that_belongs_to_no_pending_request_is_refused() -> None:
    assert enc.on_reply(None, reply(), True, "dev-1", TABLES, NOW) == "unknown_request"
    assert enc.on_reply(pending(), reply("r2"), True, "dev-1", TABLES, NOW) == "unknown_request"
    issued = base(status=enc.ISSUED)
    assert enc.on_reply(issued, reply(), True, "dev-1", TABLES, NOW) == "out_of_sequence"


def test_k2_no_reply_by_the_deadline_cancels_on_the_tick() -> None:
    state = pending()
    assert enc.on_tick(state, NOW + 4_999) == Step(state)
    assert enc.on_tick(state, NOW + 5_000) == Step(base(reason="no_reply"), (Refuse("no_reply"),))
    assert enc.on_tick(None, NOW) == Step(None)
    issued = base(status=enc.ISSUED)
    assert enc.on_tick(issued, NOW + 10**9) == Step(issued)
    no_deadline = dataclasses.replace(state, deadline_ms=None)
    assert enc.on_tick(no_deadline, NOW + 10**9) == Step(no_deadline)


def test_the_state_survives_its_wire_form() -> None:
    state = dataclasses.replace(pending(), seen=["m1"])
    assert Request.from_wire(state.to_wire()) == state
