"""Pricing an order request and naming the order (seed 003 A1–A2, Fig. 5).

Pure functions. The content follows Fig. 5: line items from the catalogue, a consumption-tax
line of 5 % rounded down and the total (¥500 + ¥600 → tax ¥55, total ¥1155). The order id the
shop assigns at A2 is derived from the order request's message id, so a redelivered request
names the same order and never opens a second one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from kessai.errors import KessaiError
from schemas.v1 import LineItem, OrderContent

CURRENCY = "JPY"
TAX_PERCENT = 5  # Fig. 5: 消費税 ¥55 on ¥1100
ORDER_ID_DIGITS = 10  # Fig. 5: 注文番号 1234567890
_ORDER_ID_DOMAIN = b"kessai/shop/order-id/v1\x00"


class OrderRejected(KessaiError):
    """The order request cannot be priced: the shop answers NOT_PAID with this detail."""

    code = "order_rejected"


def price(items: Sequence[Any], catalogue: Mapping[str, tuple[str, int]],
          currency: str = CURRENCY) -> OrderContent:
    """Price ``[[product code, quantity], ...]`` against ``catalogue`` (code → name, unit price).

    Raises:
        OrderRejected: no items, an item that is not ``[code, quantity]``, an unknown product
            code, or a quantity that is not a whole number of at least 1.
    """
    if not items:
        raise OrderRejected("the order has no items")
    lines: list[LineItem] = []
    for entry in items:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise OrderRejected("each item must be [product code, quantity]")
        code, quantity = entry
        if not isinstance(code, str) or code not in catalogue:
            raise OrderRejected(f"unknown product code {code!r}")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise OrderRejected(f"quantity of {code} must be a whole number of at least 1")
        name, unit_price = catalogue[code]
        lines.append(LineItem(code, name, unit_price, quantity))
    subtotal = sum(line.unit_price * line.quantity for line in lines)
    tax = subtotal * TAX_PERCENT // 100
    return OrderContent(lines, currency, tax, subtotal + tax)


def order_id_for(message_id: str, attempt: int = 0) -> str:
    """The order id (A2) for the order request with envelope id ``message_id``.

    Deterministic, so redelivery of the same record yields the same order; 10 decimal digits
    like the patent's example. Ten digits collide now and then within a shop (birthday bound),
    so the shop tries ``attempt`` 1, 2, … while an id is taken by another request; a
    redelivery walks the same sequence and finds its own order. Join keys carry the shop id,
    so ids of different shops may coincide harmlessly (spec R1).
    """
    salt = b"" if attempt == 0 else b"\x00" + str(attempt).encode()
    digest = hashlib.sha256(_ORDER_ID_DOMAIN + message_id.encode() + salt).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**ORDER_ID_DIGITS:0{ORDER_ID_DIGITS}d}"
