"""One POS terminal's sales as pure functions (seed 002, Fig. 18: Sd1–Sd7; P1–P4).

The phone hands its user id to the mobile terminal (its buffer, kept with the POS's state);
the POS polls that buffer on a timer (Sd4, P2: "periodically until Mobile terminal 17 receives
a user ID"), pairs the oldest waiting sale with the oldest id it finds, asks the gateway once
for a transaction number, stores it, and on the completion prints a receipt. Neither the sale
nor the id's arrival pairs by itself: only a poll does.
It never holds a card number: none reaches it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from kessai.money import Money
from protocols.wakeup import METHOD_NAMES, takes_completion
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


@dataclass(frozen=True)
class Sale:
    sale_ref: str
    items: list[list[Any]]  # [name, quantity, price]
    tax: int
    currency: str
    use_service: bool
    user_id: str = ""
    transaction_number: str = ""
    outcome: str = ""  # COMPLETED / STOPPED / REJECTED / CONVENTIONAL
    reason: str = ""
    method: str = ""
    card_user: str = ""  # embodiment 2: the user id typed at the POS
    encrypted_card: bytes = b""  # embodiment 2: the ciphertext the gateway sent (K5)

    @property
    def total(self) -> int:
        return sum(int(q) * int(p) for _, q, p in self.items) + self.tax


@dataclass(frozen=True)
class Pos:
    sales: dict[str, Sale] = field(default_factory=dict)
    waiting_users: list[str] = field(default_factory=list)  # handed over, not yet used
    seen: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Pos:
        return cls({k: Sale(**v) for k, v in raw["sales"].items()}, list(raw["waiting_users"]),
                   list(raw.get("seen", [])))


@dataclass(frozen=True)
class Step:
    state: Pos
    out: tuple[TxnNumberRequest | Receipt | CardNumberRequest | PosCreditRequest, ...] = ()


def _pair(pos_id: str, merchant_code: str, state: Pos) -> Step:
    """Sd4/Sd5: the oldest sale waiting for a user id gets the oldest handed-over id."""
    waiting = [s for s in state.sales.values()
               if s.use_service and not s.user_id and not s.outcome and not s.card_user]
    if not waiting or not state.waiting_users:
        return Step(state)
    sale, user_id = waiting[0], state.waiting_users[0]
    sale = replace(sale, user_id=user_id)
    new = replace(state, sales={**state.sales, sale.sale_ref: sale},
                  waiting_users=state.waiting_users[1:])
    return Step(new, (TxnNumberRequest(
        pos_id, sale.sale_ref, merchant_code, user_id,
        [SaleItem(str(n), int(q), int(p)) for n, q, p in sale.items], sale.tax, sale.total,
        sale.currency),))


def receipt(pos_id: str, merchant_code: str, sale: Sale) -> Receipt:
    lines = [f"MERCHANT {merchant_code}  POS {pos_id}  SALE {sale.sale_ref}"]
    lines += [f"{n} x{q} @ {p} = {int(q) * int(p)}" for n, q, p in sale.items]
    lines.append(f"TAX {sale.tax}")
    lines.append(f"TOTAL {sale.total} {sale.currency}")
    if sale.outcome == "CONVENTIONAL":
        lines.append("PAID CONVENTIONALLY")
    else:
        lines.append(f"TRANSACTION {sale.transaction_number or '-'}")
        if sale.method:
            lines.append(f"METHOD {METHOD_NAMES.get(sale.method, sale.method)}")
        lines.append(sale.outcome + (f" ({sale.reason})" if sale.reason else ""))
    return Receipt(pos_id, sale.sale_ref, sale.transaction_number,
                   "COMPLETED" if sale.outcome in ("COMPLETED", "CONVENTIONAL")
                   else sale.outcome,  # type: ignore[arg-type]
                   lines)


def on_sale(pos_id: str, merchant_code: str, state: Pos, msg: PosSale) -> Step:
    """Sd1–Sd3 (P1): keep the clerk's sale; without the service, the conventional path."""
    if msg.sale_ref in state.sales:
        return Step(state)
    sale = Sale(msg.sale_ref, [[i.name, i.quantity, i.price] for i in msg.items], msg.tax,
                msg.currency, msg.use_service)
    if not msg.use_service:
        sale = replace(sale, outcome="CONVENTIONAL")
        return Step(replace(state, sales={**state.sales, sale.sale_ref: sale}),
                    (receipt(pos_id, merchant_code, sale),))
    if msg.encrypted_card_user:
        # Embodiment 2 (S01): the user id and the merchant code go to the gateway.
        sale = replace(sale, card_user=msg.encrypted_card_user, user_id=msg.encrypted_card_user,
                       method=msg.method)
        return Step(replace(state, sales={**state.sales, sale.sale_ref: sale}),
                    (CardNumberRequest(pos_id, sale.sale_ref, sale.card_user, merchant_code,
                                       Money(sale.total, sale.currency)),))
    return Step(replace(state, sales={**state.sales, sale.sale_ref: sale}))  # Sd4: poll


def on_user_id(state: Pos, msg: ShortRangeUserId) -> Step:
    """M1: the user id the phone handed over waits in the mobile terminal until polled."""
    return Step(replace(state, waiting_users=[*state.waiting_users, msg.user_id]))


def poll_due(state: Pos) -> bool:
    """Whether this poll of the mobile terminal finds a user id for a waiting sale (P2)."""
    return bool(state.waiting_users) and any(
        s.use_service and not s.user_id and not s.outcome and not s.card_user
        for s in state.sales.values())


def on_poll(pos_id: str, merchant_code: str, state: Pos) -> Step:
    """Sd4/Sd5: the poll reads the buffered user id → the request for a transaction number."""
    return _pair(pos_id, merchant_code, state)


def on_txn_number(state: Pos, msg: TxnNumber) -> Step:
    """Sd6 (P4): store the number with the sale."""
    sale = state.sales.get(msg.sale_ref)
    if sale is None or sale.transaction_number:
        return Step(state)
    return Step(replace(state, sales={**state.sales, msg.sale_ref: replace(
        sale, transaction_number=msg.transaction_number)}))


def on_completion(pos_id: str, merchant_code: str, state: Pos, msg: PosCompletion) -> Step:
    """Sd7 (P4): store the completion with the sale and its number, print the receipt once."""
    sale = state.sales.get(msg.sale_ref)
    if sale is None or not takes_completion(sale.transaction_number, sale.outcome, msg):
        return Step(state)
    sale = replace(sale, transaction_number=sale.transaction_number or msg.transaction_number,
                   outcome=msg.outcome, reason=msg.reason, method=msg.method)
    return Step(replace(state, sales={**state.sales, sale.sale_ref: sale}),
                (receipt(pos_id, merchant_code, sale),))


# -- Embodiment 2 (Fig. 27 S10–S21; K5, K6) ----------------------------------------------------
def on_encrypted_card(pos_id: str, merchant_code: str, state: Pos, msg: EncryptedCard) -> Step:
    """K5: store the ciphertext and send the conventional credit request with it."""
    sale = state.sales.get(msg.request_ref)
    if sale is None or sale.encrypted_card or sale.outcome:
        return Step(state)
    sale = replace(sale, encrypted_card=msg.encrypted_card_number,
                   transaction_number=sale.sale_ref)
    return Step(replace(state, sales={**state.sales, sale.sale_ref: sale}), (PosCreditRequest(
        pos_id, sale.sale_ref, msg.encrypted_card_number, sale.sale_ref, merchant_code,
        Money(sale.total, sale.currency), sale.method),))


def on_card_refused(pos_id: str, merchant_code: str, state: Pos, msg: CardRefused) -> Step:
    """K1/K2 (claims 24, 27): the rejection message, passed on to the user on the receipt."""
    return _finish(pos_id, merchant_code, state, msg.request_ref, "REJECTED", msg.reason)


def on_credit_answer(pos_id: str, merchant_code: str, state: Pos, msg: CreditAnswer) -> Step:
    """K6: allowance, or failure of authentication, passed on to the user."""
    return _finish(pos_id, merchant_code, state, msg.request_ref,
                   "COMPLETED" if msg.allowed else "REJECTED",
                   "" if msg.allowed else msg.reason)


def _finish(pos_id: str, merchant_code: str, state: Pos, sale_ref: str, outcome: str,
            reason: str) -> Step:
    sale = state.sales.get(sale_ref)
    if sale is None or sale.outcome or not sale.card_user:
        return Step(state)
    sale = replace(sale, outcome=outcome, reason=reason)
    return Step(replace(state, sales={**state.sales, sale.sale_ref: sale}),
                (receipt(pos_id, merchant_code, sale),))
