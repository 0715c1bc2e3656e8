"""The POS's sales as pure functions (seed 002, Fig. 18 Sd1–Sd7, P1–P4; embodiment 2 K5/K6),
stated exactly: the state each input leaves and every message or receipt it makes. Written
when `make mutate` first ran over agents/pos/sales.py and found no fast test of it."""

from __future__ import annotations

import dataclasses

from agents.pos import sales
from agents.pos.sales import Pos, Sale, Step
from kessai.money import Money
from schemas.wakeup import (
    CardNumberRequest,
    CardRefused,
    CreditAnswer,
    EncryptedCard,
    PosCompletion,
    PosCreditRequest,
    PosSale,
    Receipt,
    SaleItem,
    ShortRangeUserId,
    TxnNumber,
    TxnNumberRequest,
)

POS, MERCHANT = "pos-1", "1111111111"
ITEMS = [SaleItem("Tea", 2, 300), SaleItem("Cake", 1, 500)]  # 1100, tax 100: total 1200


def sale_msg(ref: str = "s1", **changes: object) -> PosSale:
    return dataclasses.replace(PosSale(POS, ref, ITEMS, 100), **changes)  # type: ignore[arg-type]


def a_sale(ref: str = "s1", **changes: object) -> Sale:
    sale = Sale(ref, [["Tea", 2, 300], ["Cake", 1, 500]], 100, "JPY", True)
    return dataclasses.replace(sale, **changes)  # type: ignore[arg-type]


def head(ref: str = "s1") -> list[str]:
    return [f"MERCHANT {MERCHANT}  POS {POS}  SALE {ref}", "Tea x2 @ 300 = 600",
            "Cake x1 @ 500 = 500", "TAX 100", "TOTAL 1200 JPY"]


def txn_request(ref: str = "s1", user: str = "00001") -> TxnNumberRequest:
    return TxnNumberRequest(POS, ref, MERCHANT, user, ITEMS, 100, 1200, "JPY")


def test_a_sale_without_the_service_is_paid_conventionally_with_a_receipt() -> None:
    step = sales.on_sale(POS, MERCHANT, Pos(), sale_msg(use_service=False))
    sale = a_sale(use_service=False, outcome="CONVENTIONAL")
    assert step == Step(Pos({"s1": sale}), (Receipt(
        POS, "s1", "", "COMPLETED", [*head(), "PAID CONVENTIONALLY"]),))
    assert sales.on_sale(POS, MERCHANT, step.state, sale_msg()) == Step(step.state)


def test_a_sale_waits_for_the_user_id_then_asks_for_a_transaction_number() -> None:
    """Sd4/Sd5: whichever arrives first, the POS's poll pairs them into one request with the
    sale's total; nothing is asked before the poll (P2)."""
    waiting = sales.on_sale(POS, MERCHANT, Pos(), sale_msg())
    assert waiting == Step(Pos({"s1": a_sale()}))
    handed = sales.on_user_id(waiting.state, ShortRangeUserId(POS, "00001", "d"))
    assert handed == Step(Pos({"s1": a_sale()}, ["00001"]))
    assert sales.poll_due(handed.state)
    paired = sales.on_poll(POS, MERCHANT, handed.state)
    assert paired == Step(Pos({"s1": a_sale(user_id="00001")}), (txn_request(),))
    user_first = sales.on_user_id(Pos(), ShortRangeUserId(POS, "00001", "d"))
    assert user_first == Step(Pos(waiting_users=["00001"]))
    assert not sales.poll_due(user_first.state)
    then_sale = sales.on_sale(POS, MERCHANT, user_first.state, sale_msg())
    assert then_sale == Step(Pos({"s1": a_sale()}, ["00001"]))
    assert sales.on_poll(POS, MERCHANT, then_sale.state) == paired


def test_the_oldest_waiting_sale_gets_the_oldest_handed_over_user_id() -> None:
    state = Pos()
    for ref in ("s1", "s2"):
        state = sales.on_sale(POS, MERCHANT, state, sale_msg(ref)).state
    for user in ("u1", "u2"):
        state = sales.on_user_id(state, ShortRangeUserId(POS, user, "d")).state
    one = sales.on_poll(POS, MERCHANT, state)
    two = sales.on_poll(POS, MERCHANT, one.state)
    assert one.out == (txn_request("s1", "u1"),) and two.out == (txn_request("s2", "u2"),)
    assert two.state == Pos({"s1": a_sale(user_id="u1"), "s2": a_sale("s2", user_id="u2")})
    # No sale left waiting: a third user id waits for the next sale, and a poll asks nothing.
    three = sales.on_user_id(two.state, ShortRangeUserId(POS, "u3", "d"))
    assert three == Step(dataclasses.replace(two.state, waiting_users=["u3"]))
    assert not sales.poll_due(three.state)
    assert sales.on_poll(POS, MERCHANT, three.state) == three


def test_a_finished_or_conventional_sale_takes_no_user_id() -> None:
    state = Pos({"s1": a_sale(outcome="STOPPED"), "s2": a_sale("s2", use_service=False)})
    step = sales.on_user_id(state, ShortRangeUserId(POS, "u1", "d"))
    assert step == Step(dataclasses.replace(state, waiting_users=["u1"]))
    assert not sales.poll_due(step.state)
    assert sales.on_poll(POS, MERCHANT, step.state) == step


def test_the_transaction_number_is_stored_once() -> None:
    state = Pos({"s1": a_sale(user_id="u1")})
    stored = sales.on_txn_number(state, TxnNumber(POS, "s1", "T1"))
    assert stored == Step(Pos({"s1": a_sale(user_id="u1", transaction_number="T1")}))
    assert sales.on_txn_number(stored.state, TxnNumber(POS, "s1", "T2")) == Step(stored.state)
    assert sales.on_txn_number(state, TxnNumber(POS, "nope", "T1")) == Step(state)


def test_the_completion_prints_one_receipt_with_number_method_and_outcome() -> None:
    state = Pos({"s1": a_sale(user_id="u1", transaction_number="T1")})
    done = sales.on_completion(POS, MERCHANT, state,
                               PosCompletion(POS, "s1", "T1", "COMPLETED", method="I"))
    sale = a_sale(user_id="u1", transaction_number="T1", outcome="COMPLETED", method="I")
    assert done == Step(Pos({"s1": sale}), (Receipt(
        POS, "s1", "T1", "COMPLETED",
        [*head(), "TRANSACTION T1", "METHOD installments", "COMPLETED"]),))
    again = PosCompletion(POS, "s1", "T1", "STOPPED", "late")
    assert sales.on_completion(POS, MERCHANT, done.state, again) == Step(done.state)


def test_a_stop_before_the_number_arrived_prints_the_reason_and_the_gateways_number() -> None:
    state = Pos({"s1": a_sale(user_id="u1")})
    stopped = sales.on_completion(POS, MERCHANT, state,
                                  PosCompletion(POS, "s1", "T9", "STOPPED", "device_timeout"))
    assert stopped.out == (Receipt(POS, "s1", "T9", "STOPPED",
                                   [*head(), "TRANSACTION T9", "STOPPED (device_timeout)"]),)
    assert stopped.state.sales["s1"].transaction_number == "T9"
    rejected = sales.on_completion(POS, MERCHANT, state,
                                   PosCompletion(POS, "s1", "", "REJECTED", "user_busy"))
    assert rejected.out[0].lines[-2:] == ["TRANSACTION -", "REJECTED (user_busy)"]  # type: ignore[union-attr]


def test_a_completion_for_another_transaction_number_or_no_sale_is_ignored() -> None:
    state = Pos({"s1": a_sale(user_id="u1", transaction_number="T1")})
    other = PosCompletion(POS, "s1", "T2", "COMPLETED")
    assert sales.on_completion(POS, MERCHANT, state, other) == Step(state)
    assert sales.on_completion(POS, MERCHANT, state,
                               PosCompletion(POS, "nope", "T1", "COMPLETED")) == Step(state)


def test_the_state_survives_its_wire_form() -> None:
    state = Pos({"s1": a_sale(user_id="u1", encrypted_card=b"\x01")}, ["u2"], ["m1"])
    assert Pos.from_wire(state.to_wire()) == state
    assert Pos.from_wire({"sales": {}, "waiting_users": []}) == Pos()


# -- embodiment 2 (Fig. 27) --------------------------------------------------------------------

def ordered() -> Step:
    return sales.on_sale(POS, MERCHANT, Pos(), sale_msg(encrypted_card_user="00001", method="B"))


def test_embodiment_2_asks_the_gateway_for_the_card_by_user_id_and_amount() -> None:
    """S01: the user id typed at the POS and the merchant code go to the gateway."""
    step = ordered()
    assert step == Step(Pos({"s1": a_sale(card_user="00001", user_id="00001", method="B")}), (
        CardNumberRequest(POS, "s1", "00001", MERCHANT, Money(1200, "JPY")),))


def test_the_ciphertext_goes_out_once_in_the_conventional_credit_request() -> None:
    """K5: the POS holds the ciphertext, never the card, and sends it with the sale."""
    msg = EncryptedCard(POS, "s1", b"cipher", "2a11111", "credit-a")
    step = sales.on_encrypted_card(POS, MERCHANT, ordered().state, msg)
    sale = a_sale(card_user="00001", user_id="00001", method="B", encrypted_card=b"cipher",
                  transaction_number="s1")
    assert step == Step(Pos({"s1": sale}), (PosCreditRequest(
        POS, "s1", b"cipher", "s1", MERCHANT, Money(1200, "JPY"), "B"),))
    assert sales.on_encrypted_card(POS, MERCHANT, step.state, msg) == Step(step.state)
    assert sales.on_encrypted_card(POS, MERCHANT, step.state, dataclasses.replace(
        msg, request_ref="nope")) == Step(step.state)
    finished = Pos({"s1": dataclasses.replace(ordered().state.sales["s1"], outcome="REJECTED")})
    assert sales.on_encrypted_card(POS, MERCHANT, finished, msg) == Step(finished)


def test_the_credit_answer_is_passed_on_to_the_user_on_the_receipt() -> None:
    """K6: allowance, or failure of authentication with its reason."""
    state = sales.on_encrypted_card(POS, MERCHANT, ordered().state, EncryptedCard(
        POS, "s1", b"cipher", "2a11111", "credit-a")).state
    allowed = sales.on_credit_answer(POS, MERCHANT, state, CreditAnswer(POS, "s1", True, "x"))
    assert allowed.state.sales["s1"].outcome == "COMPLETED"
    assert allowed.state.sales["s1"].reason == ""
    assert allowed.out == (Receipt(POS, "s1", "s1", "COMPLETED",
                                   [*head(), "TRANSACTION s1", "METHOD bonus", "COMPLETED"]),)
    refused = sales.on_credit_answer(POS, MERCHANT, state,
                                     CreditAnswer(POS, "s1", False, "auth_failed"))
    assert refused.out == (Receipt(POS, "s1", "s1", "REJECTED", [
        *head(), "TRANSACTION s1", "METHOD bonus", "REJECTED (auth_failed)"]),)
    assert sales.on_credit_answer(POS, MERCHANT, allowed.state,
                                  CreditAnswer(POS, "s1", False, "late")) == Step(allowed.state)


def test_a_refused_card_is_passed_on_and_only_for_an_embodiment_2_sale() -> None:
    """K1/K2 (claims 24, 27): the gateway's rejection reaches the user on the receipt."""
    step = sales.on_card_refused(POS, MERCHANT, ordered().state,
                                 CardRefused(POS, "s1", "card_expired"))
    assert step.state.sales["s1"].outcome == "REJECTED"
    assert step.out == (Receipt(POS, "s1", "", "REJECTED", [
        *head(), "TRANSACTION -", "METHOD bonus", "REJECTED (card_expired)"]),)
    plain = Pos({"s1": a_sale(user_id="u1")})  # embodiment 1: no user id typed at the POS
    assert sales.on_card_refused(POS, MERCHANT, plain,
                                 CardRefused(POS, "s1", "no_card")) == Step(plain)
    assert sales.on_card_refused(POS, MERCHANT, plain,
                                 CardRefused(POS, "nope", "no_card")) == Step(plain)


def test_user_ids_handed_over_before_the_sales_wait_their_turn() -> None:
    state = Pos()
    for user in ("u1", "u2"):
        state = sales.on_user_id(state, ShortRangeUserId(POS, user, "d")).state
    step = sales.on_poll(POS, MERCHANT, sales.on_sale(POS, MERCHANT, state, sale_msg()).state)
    assert step == Step(Pos({"s1": a_sale(user_id="u1")}, ["u2"]), (txn_request(user="u1"),))


def test_a_method_without_a_known_name_is_printed_as_its_code() -> None:
    sale = a_sale(transaction_number="T1", outcome="COMPLETED", method="Z9")
    assert "METHOD Z9" in sales.receipt(POS, MERCHANT, sale).lines
