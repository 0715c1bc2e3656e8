"""How the shop runs one order: the protocol choices an order request may carry.

Seed 003 leaves these choices to the implementation or to the embodiment: the result route
(cl. 4/5/6, spec R27), who assigns the order id (A2 or [0027], R3), and content or its hash in
the 1st request ([0025], R14). Keys the shop does not know are not its business and are
ignored (a dishonest shop for demonstrations, R33, is the simulator's: ``sim/shop.py``).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agents.shop.pricing import OrderRejected
from schemas.v1 import ResultMode

RESULT_MODES: tuple[str, ...] = typing.get_args(ResultMode)
ID_MODES = ("shop", "settlement")


@dataclass(frozen=True)
class Scenario:
    result_mode: str
    shop_assigns_id: bool = True
    send_hash: bool = False
    brands: tuple[str, ...] = ()  # the brand(s) the user chose at checkout; () = every brand

    @classmethod
    def parse(cls, raw: Mapping[str, Any], default_mode: str) -> Scenario:
        """Read the knobs of ``OrderRequest.scenario``; unknown values reject the order.

        Raises:
            OrderRejected: a knob with a value the shop does not know.
        """
        mode = raw.get("result_mode") or default_mode
        if mode not in RESULT_MODES:
            raise OrderRejected(f"result_mode must be one of {RESULT_MODES}, got {mode!r}")
        id_mode = raw.get("id_mode") or "shop"
        if id_mode not in ID_MODES:
            raise OrderRejected(f"id_mode must be one of {ID_MODES}, got {id_mode!r}")
        send_hash = raw.get("hash", False)
        if not isinstance(send_hash, bool):
            raise OrderRejected("hash must be true or false")
        brands = raw.get("brands", [])
        if not isinstance(brands, list) or len(brands) > 8 or not all(
                isinstance(b, str) and b.isalnum() and len(b) <= 16 for b in brands):
            raise OrderRejected("brands must be a list of up to 8 brand names")
        return cls(result_mode=mode, shop_assigns_id=id_mode == "shop", send_hash=send_hash,
                   brands=tuple(brands))
