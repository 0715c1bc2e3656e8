"""Embodiment 2 at the gateway as pure decisions (seed 002, Fig. 27: S01–S13; K1–K4, claims
22–33): the user id from the POS → checks (unknown user, no card, expired card) → the optional
confirmation by the user's reply with the password → a fresh key, the card number encrypted,
the ciphertext to the POS and the key to the card issuer's credit server.

One pending request per user id (keyed like embodiment 1). Effects come back as data; the
shell makes the key and the ciphertext (the only impure part) when told to ``Issue``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agents.paygate.tables import Tables, User, issuer_of
from protocols.cards import is_expired
from schemas.wakeup import CardNumberRequest, ConfirmationMail, ConfirmationReply

AWAITING_REPLY = "AWAITING_REPLY"
ISSUED = "ISSUED"
REFUSED = "REFUSED"


@dataclass(frozen=True)
class Policy:
    """K2 [P-opt]: ask the user to confirm (default on); [X] how long to wait for the reply."""

    confirm: bool = True
    reply_ms: int = 120_000


@dataclass(frozen=True)
class Request:
    request_ref: str
    pos_id: str
    user_id: str
    merchant_code: str
    amount_minor: int
    currency: str
    status: str
    deadline_ms: int | None = None
    reason: str = ""
    seen: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Request:
        return cls(**raw)


@dataclass(frozen=True)
class Refuse:
    reason: str


@dataclass(frozen=True)
class Confirm:
    mail: ConfirmationMail


@dataclass(frozen=True)
class Issue:
    """K3/K4: make a key, encrypt the card, send the ciphertext to the POS and the key to
    the issuer's credit server."""

    issuer_code: str


Effect = Refuse | Confirm | Issue


@dataclass(frozen=True)
class Step:
    state: Request | None
    effects: tuple[Effect, ...] = ()


def card_problem(user: User | None, now_ms: int) -> str | None:
    """K1 (S07–S09, claims 24/27/30/33): why no card number can be given for the user."""
    if user is None:
        return "user_not_found"
    if not user.card_number:
        return "no_card"
    if is_expired(user.expiration, now_ms):
        return "card_expired"
    return None


def _issue(tables: Tables, req: Request) -> Step:
    user = tables.users[req.user_id]
    rng = issuer_of(tables, user.card_number)
    return Step(replace(req, status=ISSUED, deadline_ms=None),
                (Issue(rng.issuer_code if rng else ""),))


def on_request(current: Request | None, msg: CardNumberRequest, tables: Tables, now_ms: int,
               policy: Policy) -> Step:
    if current is not None and current.request_ref == msg.request_ref:
        return Step(current)  # the same request again
    if current is not None and current.status == AWAITING_REPLY:
        return Step(current, (Refuse("user_busy"),))
    base = Request(msg.request_ref, msg.pos_id, msg.user_id, msg.merchant_code,
                   msg.amount.minor, msg.amount.currency, REFUSED)
    user = tables.users.get(msg.user_id)
    problem = card_problem(user, now_ms)
    if problem is None and not tables.merchant_known(msg.merchant_code):
        problem = "unknown_merchant"
    if problem is not None:
        return Step(replace(base, reason=problem), (Refuse(problem),))
    assert user is not None
    if not policy.confirm:
        return _issue(tables, base)
    pending = replace(base, status=AWAITING_REPLY, deadline_ms=now_ms + policy.reply_ms)
    return Step(pending, (Confirm(ConfirmationMail(
        user.device_id, user.user_id, msg.request_ref, tables.merchant_name(msg.merchant_code),
        msg.amount)),))


def on_reply(current: Request | None, msg: ConfirmationReply, password_ok: bool,
             signer_device: str, tables: Tables, now_ms: int) -> Step | str:
    """K2: the reply must come in time, from the registered device, with the password;
    otherwise the request is cancelled (neither ciphertext nor key leaves). A reply that
    belongs to no pending request is refused (the reason is returned)."""
    if current is None or current.request_ref != msg.request_ref:
        return "unknown_request"
    if current.status != AWAITING_REPLY:
        return "out_of_sequence"
    if current.deadline_ms is not None and now_ms > current.deadline_ms:
        return Step(replace(current, status=REFUSED, reason="no_reply", deadline_ms=None),
                    (Refuse("no_reply"),))
    user = tables.users[current.user_id]
    if not password_ok or signer_device != user.device_id or msg.device_id != user.device_id:
        return Step(replace(current, status=REFUSED, reason="bad_password", deadline_ms=None),
                    (Refuse("bad_password"),))
    return _issue(tables, current)


def on_tick(current: Request | None, now_ms: int) -> Step:
    """K2: no reply in time → cancel."""
    if current is None or current.status != AWAITING_REPLY or current.deadline_ms is None \
            or now_ms < current.deadline_ms:
        return Step(current)
    return Step(replace(current, status=REFUSED, reason="no_reply", deadline_ms=None),
                (Refuse("no_reply"),))
