"""Tagged contents: the ``<Tag>value</Tag>`` items the wallet servers and the CA produce and
the relay's contents converter fills its templates from (seed 000 FIG. 5, spec R21–R22).

Values are XML-escaped; amounts are ``str(Money)`` ("1155 JPY"), so a converted page shows
exactly the amount the message carries (R27). Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import html

from kessai.money import Money
from schemas.v1 import OrderContent


def tag(name: str, value: object) -> str:
    """One item: ``<name>value</name>``, the value escaped."""
    return f"<{name}>{html.escape(str(value), quote=False)}</{name}>"


def tagged_payment_information(content: OrderContent, txn_id: str) -> str:
    """Tagged contents (FIG. 5 (A)) for an order: one ``<Item>`` per line item with
    ``<Product>``, ``<UnitCost>``, ``<Quant>``, then ``<Tax>``, ``<Total>`` and ``<TxnId>``.
    Amounts are formatted by Money, so the ``<Total>`` text is ``str(content.amount)`` (R27)."""
    e = html.escape
    rows = "".join(
        f"<Item><Product>{e(item.name)}</Product>"
        f"<UnitCost>{e(str(Money(item.unit_price, content.currency)))}</UnitCost>"
        f"<Quant>{item.quantity}</Quant></Item>"
        for item in content.items)
    return (f"{rows}<Tax>{e(str(Money(content.tax, content.currency)))}</Tax>"
            f"<Total>{e(str(content.amount))}</Total><TxnId>{e(txn_id)}</TxnId>")


__all__ = ["tag", "tagged_payment_information"]
