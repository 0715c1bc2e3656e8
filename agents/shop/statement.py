"""What the shop states in its 1st settlement request (seed 003 A3): the seam where a
simulator can put a dishonest shop.

The production shop states the order exactly as it priced it (:data:`HONEST`). The
two-sided collation exists because a shop might not (spec R33): ``sim/shop.py`` injects a
shop that overcharges on demand, to show the settlement server catching it. No production
code path reads a demo knob.
"""

from __future__ import annotations

from typing import Protocol

from schemas.v1 import OrderContent, OrderRequest


class Statement(Protocol):
    def first_request(self, content: OrderContent, request: OrderRequest) -> OrderContent:
        """The content the 1st request states for ``request``, priced as ``content``.

        Raises:
            agents.shop.pricing.OrderRejected: the order is refused (answered NOT_PAID).
        """
        ...


class Honest:
    """States the order as priced."""

    def first_request(self, content: OrderContent, request: OrderRequest) -> OrderContent:
        return content


HONEST = Honest()
