"""One transaction at the payment server, as a pure state machine (seed 002, Fig. 19, G1–G13).

Each ``on_*`` takes the user's current transaction (the gateway keeps at most one pending
transaction per user id, G11 (a) [X]) and an input, and returns a :class:`Step`: the new state
and the effects, as data, for the agent shell to carry out; or a :class:`Refusal` when the
input does not belong to the transaction (a replayed or out-of-sequence session message), which
the shell dead-letters. Terminal states (G13) are ``COMPLETED`` and ``STOPPED``; nothing leaves
them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agents.paygate.tables import Tables, methods_for
from kessai.money import Money
from schemas.wakeup import (
    AuthRequest,
    CompletionNotice,
    CreditResponse,
    GatewayCertificate,
    MailRequest,
    MethodChoice,
    PaymentMethods,
    PosCompletion,
    ProceedRequest,
    SaleItem,
    ServerCertificate,
    SessionError,
    SessionOpen,
    TransactionDetails,
    TxnNumber,
    TxnNumberRequest,
)

PENDING_DEVICE = "PENDING_DEVICE"
AWAITING_CONFIRMATION = "AWAITING_CONFIRMATION"
AWAITING_METHOD = "AWAITING_METHOD"
CREDIT_REQUESTED = "CREDIT_REQUESTED"
COMPLETED = "COMPLETED"
STOPPED = "STOPPED"
TERMINAL = frozenset({COMPLETED, STOPPED})
TIMEOUT_REASON = {PENDING_DEVICE: "device_timeout", AWAITING_CONFIRMATION: "confirmation_timeout",
                  AWAITING_METHOD: "method_timeout"}


@dataclass(frozen=True)
class Policy:
    """[X] the patent gives no values: how long the gateway waits for the phone to answer the
    wake-up, for the confirmation (G4/G5, Se13) and for the method choice."""

    device_wait_ms: int = 300_000
    confirm_ms: int = 120_000
    method_ms: int = 120_000


@dataclass(frozen=True)
class Txn:
    transaction_number: str
    user_id: str
    device_id: str
    pos_id: str
    sale_ref: str
    merchant_code: str
    merchant_name: str
    items: list[list[Any]]  # [name, quantity, price]
    tax: int
    total: int
    currency: str
    created_ms: int
    status: str = PENDING_DEVICE
    deadline_ms: int | None = None
    session_id: str = ""
    methods: list[str] = field(default_factory=list)
    method: str = ""
    reason: str = ""
    seen: list[str] = field(default_factory=list)  # message ids already applied
    trace_id: str = ""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def sale_items(self) -> list[SaleItem]:
        return [SaleItem(str(n), int(q), int(p)) for n, q, p in self.items]

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Txn:
        return cls(**raw)


@dataclass(frozen=True)
class ToPos:
    message: TxnNumber | PosCompletion


@dataclass(frozen=True)
class ToDirection:
    message: MailRequest


@dataclass(frozen=True)
class ToDevice:
    message: Any  # ServerCertificate, SessionError, TransactionDetails, PaymentMethods, …


@dataclass(frozen=True)
class RequestCredit:
    """Se15: build the credit request (card and expiry from table 154a, sealed)."""


@dataclass(frozen=True)
class Record:
    """Append the finished transaction to the user's history (the electronic receipt, V4)."""


Effect = ToPos | ToDirection | ToDevice | RequestCredit | Record


@dataclass(frozen=True)
class Step:
    state: Txn | None
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True)
class Refusal:
    reason: str
    detail: str


def transaction_number(merchant_code: str, pos_id: str, sale_ref: str) -> str:
    """G1: unique per sale, and the same again for a redelivered request (no second number)."""
    digest = hashlib.sha256(f"{merchant_code}/{pos_id}/{sale_ref}".encode()).hexdigest()
    return str(int(digest[:15], 16) % 10**12).zfill(12)


def _rejected(req: TxnNumberRequest, reason: str) -> Step:
    return Step(None, (ToPos(PosCompletion(req.pos_id, req.sale_ref, "", "REJECTED", reason)),))


# -- Se1–Se4: the POS's request for a transaction number -------------------------------------
def on_request(current: Txn | None, req: TxnNumberRequest, tables: Tables, now_ms: int,
               policy: Policy) -> Step:
    user = tables.users.get(req.user_id)
    if user is None:
        return _rejected(req, "unknown_user")  # G2 [X]: the patent does not say
    if not tables.merchant_known(req.merchant_code):
        return _rejected(req, "unknown_merchant")
    if not req.items or any(i.quantity <= 0 or i.price < 0 for i in req.items) or req.tax < 0 \
            or req.total != sum(i.quantity * i.price for i in req.items) + req.tax:
        return _rejected(req, "bad_transaction_info")
    number = transaction_number(req.merchant_code, req.pos_id, req.sale_ref)
    if current is not None and current.transaction_number == number:
        return Step(current)  # the same sale again: it has its number already
    if current is not None and not current.terminal:
        return _rejected(req, "user_busy")  # G11 (a): one pending transaction per user
    txn = Txn(number, user.user_id, user.device_id, req.pos_id, req.sale_ref,
              req.merchant_code, tables.merchant_name(req.merchant_code),
              [[i.name, i.quantity, i.price] for i in req.items], req.tax, req.total,
              req.currency, now_ms, deadline_ms=now_ms + policy.device_wait_ms)
    return Step(txn, (ToPos(TxnNumber(req.pos_id, req.sale_ref, number)),
                      ToDirection(MailRequest(user.user_id, user.device_id, number))))


def _check(current: Txn | None, status: str, session_id: str | None) -> Refusal | None:
    if current is None:
        return Refusal("unknown_transaction", "no transaction for this user")
    if current.status != status:
        return Refusal("out_of_sequence", f"transaction {current.transaction_number} is "
                                          f"{current.status}, not {status}")
    if session_id is not None and current.session_id != session_id:
        return Refusal("session_mismatch", "not this transaction's session")
    return None


def stop(txn: Txn, reason: str, now_ms: int) -> Step:
    """Se11: error processing; the POS is told (G13 [X]) and, if a session is open, the phone."""
    stopped = replace(txn, status=STOPPED, reason=reason, deadline_ms=None)
    effects: list[Effect] = [ToPos(PosCompletion(txn.pos_id, txn.sale_ref,
                                                 txn.transaction_number, "STOPPED", reason))]
    if txn.session_id:
        effects.append(ToDevice(SessionError(txn.device_id, txn.session_id, reason)))
    effects.append(Record())
    return Step(stopped, tuple(effects))


# -- Sc1/Se8: the phone connects and asks for the certificate ----------------------------------
def on_session_open(current: Txn | None, msg: SessionOpen, address: str,
                    certificate: GatewayCertificate) -> Step | Refusal:
    refusal = _check(current, PENDING_DEVICE, None)
    if refusal is not None:
        return refusal
    assert current is not None
    if current.session_id and current.session_id != msg.session_id:
        return Refusal("session_mismatch", "a session is already open for this transaction")
    if msg.address != address:
        return Refusal("wrong_address", f"the session was opened for {msg.address}")
    return Step(replace(current, session_id=msg.session_id),
                (ToDevice(ServerCertificate(msg.device_id, msg.session_id, certificate)),))


# -- Se9–Se12: authenticity and the device id, then the details --------------------------------
def on_auth(current: Txn | None, msg: AuthRequest, signer_device: str, tables: Tables,
            now_ms: int, policy: Policy) -> Step | Refusal:
    refusal = _check(current, PENDING_DEVICE, msg.session_id)
    if refusal is not None:
        return refusal
    assert current is not None
    if not msg.authentic:
        return stop(current, "auth_result_invalid", now_ms)  # G3 (a)
    user = tables.users[current.user_id]
    # G3 (b), Se10: the device id sent must be the one registered for the user id (and the
    # phone that signed must be that device).
    if msg.device_id != user.device_id or signer_device != msg.device_id:
        return stop(replace(current, device_id=signer_device), "device_id_mismatch", now_ms)
    txn = replace(current, status=AWAITING_CONFIRMATION,
                  deadline_ms=now_ms + policy.confirm_ms)
    return Step(txn, (ToDevice(TransactionDetails(
        txn.device_id, txn.session_id, txn.transaction_number, txn.merchant_name,
        txn.sale_items, txn.tax, Money(txn.total, txn.currency))),))


# -- Se13/Se14: the confirmation in time, then the allowed methods -----------------------------
def on_proceed(current: Txn | None, msg: ProceedRequest, tables: Tables, now_ms: int,
               policy: Policy) -> Step | Refusal:
    refusal = _check(current, AWAITING_CONFIRMATION, msg.session_id)
    if refusal is not None:
        return refusal
    assert current is not None
    if current.deadline_ms is not None and now_ms > current.deadline_ms:
        return stop(current, "confirmation_timeout", now_ms)  # G5, even before the tick
    methods = methods_for(tables, current.user_id, current.merchant_code)
    if isinstance(methods, str):
        return stop(current, methods, now_ms)
    txn = replace(current, status=AWAITING_METHOD, methods=list(methods),
                  deadline_ms=now_ms + policy.method_ms)
    return Step(txn, (ToDevice(PaymentMethods(txn.device_id, txn.session_id, list(methods))),))


# -- Se15: the chosen method → one credit request ----------------------------------------------
def on_choice(current: Txn | None, msg: MethodChoice, now_ms: int) -> Step | Refusal:
    refusal = _check(current, AWAITING_METHOD, msg.session_id)
    if refusal is not None:
        return refusal
    assert current is not None
    if current.deadline_ms is not None and now_ms > current.deadline_ms:
        return stop(current, "method_timeout", now_ms)
    if msg.method not in current.methods:
        return stop(current, "method_not_offered", now_ms)  # G7 [X]
    return Step(replace(current, status=CREDIT_REQUESTED, method=msg.method, deadline_ms=None),
                (RequestCredit(),))


# -- Se16: the credit server's answer → the POS and the phone ---------------------------------
def on_credit(current: Txn | None, msg: CreditResponse, now_ms: int) -> Step | Refusal:
    refusal = _check(current, CREDIT_REQUESTED, None)
    if refusal is not None:
        return refusal
    assert current is not None
    if msg.transaction_number != current.transaction_number:
        return Refusal("unknown_transaction", "a response for another transaction")
    if not msg.approved:
        return stop(current, f"credit_refused:{msg.reason}", now_ms)
    done = replace(current, status=COMPLETED)
    return Step(done, (
        ToPos(PosCompletion(done.pos_id, done.sale_ref, done.transaction_number, "COMPLETED",
                            method=done.method)),
        ToDevice(CompletionNotice(done.device_id, done.session_id, done.transaction_number,
                                  "COMPLETED")),
        Record()))


def on_tick(current: Txn | None, now_ms: int) -> Step:
    """G5: a deadline passed with no answer: stop (no credit request is ever sent)."""
    if current is None or current.terminal or current.deadline_ms is None \
            or now_ms < current.deadline_ms:
        return Step(current)
    return stop(current, TIMEOUT_REASON.get(current.status, "timeout"), now_ms)
