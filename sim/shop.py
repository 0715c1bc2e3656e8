"""A dishonest shop, for demonstrations and tests (spec R33): the production shop
(:mod:`agents.shop.agent`) with a 1st settlement request that overcharges on demand.

An order request whose ``scenario`` says ``shop_tamper: amount`` gets a 1st request whose
total is :data:`OVERSTATEMENT` minor units above the priced order, while the user's device is
shown (and confirms) the true amount; the settlement server's two-sided collation answers
MISMATCH. Any other ``shop_tamper`` value refuses the order, as an unknown protocol choice
does. `kessai up`, the end-to-end fixture and `kessai bench` run this shop
(`kessai worker shop --sim`); a production deployment runs the honest one, which ignores the
knob.
"""

from __future__ import annotations

import dataclasses

from agents.shop import agent as shop
from agents.shop.pricing import OrderRejected
from kessai.runtime import AgentContext
from schemas.v1 import OrderContent, OrderRequest

KIND = shop.KIND
TAMPERS = ("none", "amount")
OVERSTATEMENT = 100  # minor units the dishonest shop adds to its 1st request


def overstated(content: OrderContent, by: int) -> OrderContent:
    """The content told to the settlement server: the total raised by ``by``, nothing else."""
    return dataclasses.replace(content, total=content.total + by)


class Overcharging:
    """States the priced order, or overcharges when the order request asks for it."""

    def first_request(self, content: OrderContent, request: OrderRequest) -> OrderContent:
        tamper = request.scenario.get("shop_tamper") or "none"
        if tamper not in TAMPERS:
            raise OrderRejected(f"shop_tamper must be one of {TAMPERS}, got {tamper!r}")
        return overstated(content, OVERSTATEMENT) if tamper == "amount" else content


def register(ctx: AgentContext) -> None:
    """The shop worker, with the dishonest statement injected."""
    shop.register(ctx, statement=Overcharging())
