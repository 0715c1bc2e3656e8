"""Gaps `make mutate` found in the seed-002 mailbox (W1, W2) and the gateway's tables (Figs.
7–10, G6): the folded form, a redelivered fetch, range bounds, table loading."""

from __future__ import annotations

import pytest

from agents.direction import mailbox
from agents.direction.mailbox import Stored
from agents.paygate.tables import IssuerRange, MerchantRow, Tables, User, allowed_methods
from protocols.wakeup import START_PAYMENT_APP
from schemas.wakeup import Mail, MailFetch, MailRequest, ReceptionNotice

REQ = MailRequest("00001", "dev-1", "T1")
MAIL = Mail("dev-1", "mail-T1", "payment@paygate", [START_PAYMENT_APP])


def test_w1_the_mail_is_stored_under_the_transaction_and_announced_or_pushed() -> None:
    box, notice = mailbox.on_request({}, REQ, "payment@paygate", folded=False)
    assert box == {"mail-T1": Stored(MAIL)} and notice == ReceptionNotice("dev-1", "mail-T1")
    folded_box, pushed = mailbox.on_request({}, REQ, "payment@paygate", folded=True)
    assert folded_box == box and pushed == MAIL  # [X] the folded form: the mail itself
    again_box, again = mailbox.on_request(box, REQ, "payment@paygate", folded=True)
    assert again_box is box and again is None


def test_w2_a_fetch_delivers_once_per_fetch_and_again_for_a_new_fetch() -> None:
    box = {"mail-T1": Stored(MAIL)}
    fetched_box, mail, problem = mailbox.on_fetch(box, MailFetch("dev-1", "mail-T1"), "f1")
    assert (fetched_box, mail, problem) == ({"mail-T1": Stored(MAIL, "f1")}, MAIL, None)
    # The same fetch redelivered sends nothing; a new fetch (the phone asks again) sends it.
    assert mailbox.on_fetch(fetched_box, MailFetch("dev-1", "mail-T1"), "f1") == (
        fetched_box, None, None)
    assert mailbox.on_fetch(fetched_box, MailFetch("dev-1", "mail-T1"), "f2") == (
        {"mail-T1": Stored(MAIL, "f2")}, MAIL, None)
    assert mailbox.on_fetch(box, MailFetch("dev-1", "nope"), "f3") == (box, None, "no_such_mail")


def test_fig9_a_range_includes_both_bounds_and_refuses_non_digits() -> None:
    rng = IssuerRange("1525000000", "1525059999", "2a11111", "A")
    assert rng.contains("1525000000" + "000000") and rng.contains("1525059999" + "999999")
    assert not rng.contains("1524999999" + "999999")
    assert not rng.contains("152500000X123456")
    assert not IssuerRange("13500", "1356", "x", "X").contains("1357")  # too short for low


def test_fig10_methods_come_in_table_order_and_only_for_the_row_of_both_codes() -> None:
    t = Tables({}, (), (MerchantRow("M1", "Shop", "I1", ("R", "L")),
                        MerchantRow("M2", "Other", "I1", ("B",))), {})
    assert allowed_methods(t, "M1", "I1") == ("L", "R")
    assert allowed_methods(t, "M2", "I1") == ("B",)
    assert allowed_methods(t, "M1", "I2") == ()
    assert t.merchant_name("M2") == "Other" and t.merchant_name("M9") == "M9"
    assert t.merchant_known("M2") and not t.merchant_known("M9")


def test_the_tables_load_from_the_key_file_and_refuse_unknown_methods() -> None:
    t = Tables.from_config({
        "users": {"00001": {"device_id": 1234567, "card_number": 1525000012345678,
                            "expiration": "2031-12"}},
        "issuers": [[1525000000, 1525059999, "2a11111", "A"]],
        "merchants": [[1111111111, "Shop A", "2a11111", ["L", "pB"]]],
        "credit_servers": {"2a11111": "credit-a"}})
    assert t.users == {"00001": User("00001", "1234567", "1525000012345678", "2031-12")}
    assert t.issuers == (IssuerRange("1525000000", "1525059999", "2a11111", "A"),)
    assert t.merchants == (MerchantRow("1111111111", "Shop A", "2a11111", ("L", "pB")),)
    assert t.credit_servers == {"2a11111": "credit-a"}
    assert Tables.from_config({}) == Tables({}, (), (), {})
    with pytest.raises(ValueError, match="unknown methods"):
        Tables.from_config({"merchants": [["M", "N", "I", ["L", "X"]]]})
