"""The web shop's decisions (seed 002 V3) and the completion rule it shares with the POS."""

from __future__ import annotations

from agents.webshop import orders
from agents.webshop.orders import Order, Shop, Step
from protocols.wakeup import takes_completion
from schemas.wakeup import (
    PosCompletion,
    SaleItem,
    TxnNumber,
    TxnNumberRequest,
    WebOrder,
    WebOrderResult,
)

SHOP, MERCHANT = "webshop-1", "3333333333"
ITEMS = [SaleItem("Sencha 100g", 2, 1200)]


def done(number: str = "T1", outcome: str = "COMPLETED") -> PosCompletion:
    return PosCompletion(SHOP, "o1", number, outcome, method="L")  # type: ignore[arg-type]


def test_a_completion_is_taken_once_and_only_for_its_own_transaction_number() -> None:
    assert takes_completion("", "", done())  # no number yet: the gateway's is taken
    assert takes_completion("T1", "", done("T1"))
    assert takes_completion("T1", "", done(""))  # a stop before any number was given
    assert not takes_completion("T1", "", done("T2"))  # another transaction's completion
    assert not takes_completion("T1", "COMPLETED", done("T1"))  # only once


def test_checkout_asks_one_transaction_number_without_a_card() -> None:
    step = orders.on_order(SHOP, MERCHANT, Shop(), WebOrder(SHOP, "o1", " 00001 ", ITEMS, 240))
    assert step.out == (TxnNumberRequest(SHOP, "o1", MERCHANT, "00001", ITEMS, 240, 2640,
                                         "JPY"),)
    assert orders.on_order(SHOP, MERCHANT, step.state,
                           WebOrder(SHOP, "o1", "00001", ITEMS, 240)) == Step(step.state)
    refused = orders.on_order(SHOP, MERCHANT, Shop(), WebOrder(SHOP, "o2", " ", ITEMS, 240))
    assert refused.out == (WebOrderResult(SHOP, "o2", "", "REJECTED", "no_user_id", ""),)


def test_the_web_order_shows_its_completion_once() -> None:
    state = Shop({"o1": Order("o1", "00001", [["Sencha 100g", 2, 1200]], 240, "JPY")})
    numbered = orders.on_txn_number(state, TxnNumber(SHOP, "o1", "T1")).state
    assert orders.on_completion(SHOP, numbered, done("T2")) == Step(numbered)
    shown = orders.on_completion(SHOP, numbered, done("T1"))
    assert shown.out == (WebOrderResult(SHOP, "o1", "T1", "COMPLETED", "", "L"),)
    assert orders.on_completion(SHOP, shown.state, done("T1", "STOPPED")) == Step(shown.state)
