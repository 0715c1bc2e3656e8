"""One web shop's orders as pure functions (seed 002 V3, [0117]–[0119], Fig. 20; G10).

The web server takes the place of the POS and the mobile terminal: the customer checks out
with their user id, the shop asks the gateway once for a transaction number (the same
``TxnNumberRequest`` a POS sends, P3), stores it, and shows the completion the gateway sends
back. It never holds a card number: none reaches it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from protocols.wakeup import takes_completion
from schemas.wakeup import (
    PosCompletion,
    SaleItem,
    TxnNumber,
    TxnNumberRequest,
    WebOrder,
    WebOrderResult,
)


@dataclass(frozen=True)
class Order:
    order_ref: str
    user_id: str
    items: list[list[Any]]  # [name, quantity, price]
    tax: int
    currency: str
    transaction_number: str = ""
    outcome: str = ""  # COMPLETED / STOPPED / REJECTED
    reason: str = ""
    method: str = ""

    @property
    def total(self) -> int:
        return sum(int(q) * int(p) for _, q, p in self.items) + self.tax


@dataclass(frozen=True)
class Shop:
    orders: dict[str, Order] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Shop:
        return cls({k: Order(**v) for k, v in raw["orders"].items()}, list(raw.get("seen", [])))


@dataclass(frozen=True)
class Step:
    state: Shop
    out: tuple[TxnNumberRequest | WebOrderResult, ...] = ()


def _result(shop_id: str, o: Order) -> WebOrderResult:
    return WebOrderResult(shop_id, o.order_ref, o.transaction_number,
                          o.outcome, o.reason, o.method)  # type: ignore[arg-type]


def on_order(shop_id: str, merchant_code: str, state: Shop, msg: WebOrder) -> Step:
    """Checkout: keep the order; one request for a transaction number (user id, goods,
    merchant; no card). An order without goods or a user id is refused on the spot."""
    if msg.order_ref in state.orders:
        return Step(state)
    order = Order(msg.order_ref, msg.user_id.strip(),
                  [[i.name, i.quantity, i.price] for i in msg.items], msg.tax, msg.currency)
    if not order.user_id or not order.items:
        order = replace(order, outcome="REJECTED",
                        reason="no_user_id" if not order.user_id else "empty_cart")
        return Step(replace(state, orders={**state.orders, order.order_ref: order}),
                    (_result(shop_id, order),))
    return Step(replace(state, orders={**state.orders, order.order_ref: order}), (
        TxnNumberRequest(shop_id, order.order_ref, merchant_code, order.user_id,
                         [SaleItem(str(n), int(q), int(p)) for n, q, p in order.items],
                         order.tax, order.total, order.currency),))


def on_txn_number(state: Shop, msg: TxnNumber) -> Step:
    """The gateway's transaction number, stored with the order (as the POS does, P4)."""
    order = state.orders.get(msg.sale_ref)
    if order is None or order.transaction_number:
        return Step(state)
    return Step(replace(state, orders={**state.orders, msg.sale_ref: replace(
        order, transaction_number=msg.transaction_number)}))


def on_completion(shop_id: str, state: Shop, msg: PosCompletion) -> Step:
    """The completion over network 10A: stored with the order, shown once."""
    order = state.orders.get(msg.sale_ref)
    if order is None or not takes_completion(order.transaction_number, order.outcome, msg):
        return Step(state)
    order = replace(order, transaction_number=order.transaction_number or msg.transaction_number,
                    outcome=msg.outcome, reason=msg.reason, method=msg.method)
    return Step(replace(state, orders={**state.orders, order.order_ref: order}),
                (_result(shop_id, order),))
