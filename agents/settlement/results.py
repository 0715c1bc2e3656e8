"""Building the settlement result (M9/M11) with its authenticators (cl. 7/24 and 11/28)."""

from __future__ import annotations

from agents.settlement.join import JoinState
from kessai import authenticators
from kessai.money import Money
from schemas.v1 import PaymentResult


def parties(state: JoinState) -> tuple[str, str, str, Money]:
    """shop id, order id, session and the agreed amount of a (possibly one-sided) order."""
    first, second = state.first_request(), state.second_request()
    if first is not None:
        shop_id, order_id, amount = first.shop_id, first.order_id, first.amount
    else:
        assert second is not None
        shop_id, order_id, amount = second.shop_id, second.order_id, second.amount
    session = second.session if second is not None else ""
    return shop_id, order_id, session, amount


def build_result(state: JoinState, recipient: str, shop_key: bytes,
                 user_key: bytes | None) -> PaymentResult:
    assert state.outcome is not None
    shop_id, order_id, session, amount = parties(state)
    outcome = state.outcome
    user_tag = b""
    if user_key is not None and session:
        user_tag = authenticators.user_authenticator(user_key, shop_id, order_id, outcome,
                                                     amount, session)
    return PaymentResult(
        shop_id=shop_id, order_id=order_id, session=session,
        recipient=recipient,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        amount=amount, result_mode=state.result_mode,  # type: ignore[arg-type]
        shop_authenticator=authenticators.shop_authenticator(shop_key, shop_id, order_id,
                                                             outcome, amount),
        user_authenticator=user_tag,
        attempt=max(1, state.deliveries),
    )
