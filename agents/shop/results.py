"""The shop's verdict on a settlement result (seed 003 A23/B20/C26, cl. 7/19, spec R28).

Pure. A result pays an order only if the settlement server's authenticator — made with the key
the shop and the settlement server exchanged in advance — verifies over {shop id, order id,
outcome, amount}, and the amount is the one the shop asked for. A user who relays a result
cannot forge the authenticator without that key ([0043]); the shop ships only on PAID.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Final, Literal

from kessai import authenticators
from kessai.money import Money
from schemas.v1 import Outcome

PAID: Final = "PAID"
NOT_PAID: Final = "NOT_PAID"
RESULT_REJECTED: Final = "RESULT_REJECTED"
FINAL = frozenset({PAID, NOT_PAID})
OUTCOMES: frozenset[str] = frozenset(typing.get_args(Outcome))


@dataclass(frozen=True)
class Verdict:
    status: Literal["PAID", "NOT_PAID", "RESULT_REJECTED"]
    detail: str = ""

    @property
    def final(self) -> bool:
        return self.status in FINAL


def settled(outcome: str) -> Verdict:
    """Verdict on an authentic result: only APPROVED pays ([0053]: otherwise cancel or retry)."""
    return Verdict(PAID) if outcome == "APPROVED" else Verdict(NOT_PAID, f"outcome {outcome}")


def judge_result(key: bytes, shop_id: str, order_id: str, expected: Money, outcome: str,
                 amount: Money, tag: bytes) -> Verdict:
    """Judge a result that carries the shop authenticator (direct M11, or relayed M10)."""
    if not authenticators.shop_authenticator_ok(key, shop_id, order_id, outcome, amount, tag):
        return Verdict(RESULT_REJECTED, "shop authenticator does not verify")
    if amount != expected:
        return Verdict(RESULT_REJECTED, f"amount {amount} is not the order's {expected}")
    if outcome not in OUTCOMES:
        return Verdict(RESULT_REJECTED, f"unknown outcome {outcome!r}")
    return settled(outcome)


def judge_answer(expected: Money, outcome: str, amount: Money | None) -> Verdict | None:
    """Judge an inquiry answer (M12r, emb. 3); ``None`` means no result yet: ask again.

    The answer comes over the authenticated channel (a settlement-signed envelope, cl. 9/20),
    so there is no authenticator; the amount is still checked when the answer names one.
    """
    if outcome not in OUTCOMES:
        return None  # UNKNOWN_OR_EXPIRED, PENDING, DENIED: no settled outcome to act on
    if amount is not None and amount != expected:
        return Verdict(RESULT_REJECTED, f"amount {amount} is not the order's {expected}")
    return settled(outcome)
