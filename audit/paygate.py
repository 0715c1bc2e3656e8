"""Recomputing the seed-002 payment gateway's decisions (EP 1 280 115, Fig. 19; issue 10).

The recorded POS requests, phone session messages, credit answers and deadline ticks go, in
recorded order and at their recorded times, through the gateway's own state machine
(:mod:`agents.paygate.txn`, with its tables :mod:`agents.paygate.tables` from the gateway's
key file): the transaction number (G1), the device check (G3), the confirmation deadline (G5),
the methods table 154d allows for the card's issuer at this merchant (G6, Se14), the credit
request for the chosen method (Se15) and the outcome after the credit server's answer (Se16).
What the machine would send is compared, per sale, with what the gateway recorded: the
transaction numbers and completions to the POS, the method lists and errors to the phone, the
credit requests. The timings come from this machine's ``KESSAI_PAYGATE_*_MS`` settings, as
the gateway reads them. Embodiment 2 (encrypted cards) is not recomputed.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from agents.paygate import txn as machine
from agents.paygate.tables import Tables
from audit.decisions import Finding, Where, usable
from kessai.handlers import actor_kind
from kessai.money import Money
from kessai.replay import ReplayRecord
from schemas.wakeup import (
    AuthRequest,
    CreditRequest,
    CreditResponse,
    GatewayCertificate,
    MethodChoice,
    PaymentMethods,
    PosCompletion,
    ProceedRequest,
    SessionError,
    SessionOpen,
    TxnNumber,
    TxnNumberRequest,
    WakeupTick,
)

# The gateway's topics (agents/paygate/agent.py).
TXN_REQUESTS = "kessai.paygate.txn-requests"
SESSIONS = "kessai.paygate.sessions"
CREDIT_REQUESTS = "kessai.credit.requests"
CREDIT_RESPONSES = "kessai.credit.responses"
TIMERS = "kessai.paygate.timers"
TXN_NUMBERS = "kessai.pos.txn-numbers"
COMPLETIONS = "kessai.pos.completions"
DEVICE_SESSIONS = "kessai.device.sessions"
INPUTS = (TXN_REQUESTS, SESSIONS, CREDIT_RESPONSES, TIMERS)
OUTPUTS = (TXN_NUMBERS, COMPLETIONS, DEVICE_SESSIONS, CREDIT_REQUESTS)
TOPICS = INPUTS + OUTPUTS
_NO_CERT = GatewayCertificate("", "", b"", 0, b"")  # the certificate is not a decision


def policy_from_env() -> machine.Policy:
    """The [X] timings the gateway reads (``KESSAI_PAYGATE_{DEVICE_WAIT,CONFIRM,METHOD}_MS``)."""
    base = machine.Policy()
    return machine.Policy(
        int(os.environ.get("KESSAI_PAYGATE_DEVICE_WAIT_MS", base.device_wait_ms)),
        int(os.environ.get("KESSAI_PAYGATE_CONFIRM_MS", base.confirm_ms)),
        int(os.environ.get("KESSAI_PAYGATE_METHOD_MS", base.method_ms)))


Output = tuple[Any, ...]


def decision_of(msg: Any) -> Output | None:
    """The part of an output that is a decision (None: not compared)."""
    if isinstance(msg, TxnNumber):
        return ("txn-number", msg.pos_id, msg.sale_ref)
    if isinstance(msg, PosCompletion):
        return ("completion", msg.outcome, msg.reason, msg.method)
    if isinstance(msg, PaymentMethods):
        return ("methods", msg.device_id, tuple(msg.methods))
    if isinstance(msg, SessionError):
        return ("session-error", msg.device_id, msg.reason)
    if isinstance(msg, CreditRequest):
        return ("credit", msg.method, msg.amount.minor, msg.amount.currency)
    return None


@dataclass
class Sale:
    began: Where
    number: str = ""
    shadow: Counter[Output] = field(default_factory=Counter)
    recorded: dict[Output, list[Where]] = field(default_factory=dict)


class PaygateAudit:
    name = "payment gateway (seed 002)"
    topics = TOPICS

    def __init__(self, tables: Tables, policy: machine.Policy | None = None,
                 address: str = "") -> None:
        self.tables = tables
        self.policy = policy or policy_from_env()
        self.address = address
        self.current: dict[str, machine.Txn] = {}  # user id → the transaction
        self.sales: dict[str, Sale] = {}  # transaction number (or pos/sale ref) → sale
        self.decisions = 0
        self.outputs: list[tuple[Any, str, Where]] = []  # matched to sales at the end
        self._seen: set[str] = set()

    @classmethod
    def from_secrets(cls, cfg: dict[str, Any]) -> PaygateAudit:
        return cls(Tables.from_config(cfg), address=str(cfg.get("address", "")))

    def feed(self, r: ReplayRecord) -> None:
        if r.topic not in TOPICS or not usable(r):
            return
        if r.topic in OUTPUTS:
            if r.sender == "paygate" and decision_of(r.message) is not None:
                self.outputs.append((r.message, r.correlation_id or "", Where.of(r)))
            return
        if r.message_id in self._seen:
            return  # a redelivery changes nothing
        self._seen.add(r.message_id or "")
        msg, kind, now = r.message, actor_kind(r.sender or ""), r.timestamp_ms
        step: machine.Step | machine.Refusal
        if r.topic == TXN_REQUESTS and isinstance(msg, TxnNumberRequest) and kind == "pos":
            current = self.current.get(msg.user_id)
            step = machine.on_request(current, msg, self.tables, now, self.policy)
            subject = step.state.transaction_number if step.state is not None \
                else f"{msg.pos_id}/{msg.sale_ref}"
            self.sales.setdefault(subject, Sale(Where.of(r), subject))
        elif r.topic == SESSIONS and kind == "device":
            current = self.current.get(msg.user_id)
            step = self._session(current, msg, (r.sender or "").removeprefix("device-"), now)
        elif r.topic == CREDIT_RESPONSES and isinstance(msg, CreditResponse) \
                and kind == "issuer":
            user_id = (r.key or b"").decode("utf-8", "replace")
            current = self.current.get(user_id)
            expected = f"pg/{current.transaction_number}" if current is not None else ""
            if current is not None and (current.terminal or msg.join_key != expected):
                return  # answered again, or for another transaction: nothing sent
            step = machine.on_credit(current, msg, now)
        elif r.topic == TIMERS and isinstance(msg, WakeupTick) and kind == "paygate":
            current = self.current.get(msg.key)
            step = machine.on_tick(current, now)
        else:
            return
        self._apply(current, step)

    def _session(self, current: machine.Txn | None, msg: Any, signer: str, now: int
                 ) -> machine.Step | machine.Refusal:
        step: machine.Step | machine.Refusal
        if isinstance(msg, SessionOpen):
            step = machine.on_session_open(current, msg, self.address or msg.address, _NO_CERT)
        elif isinstance(msg, AuthRequest):
            step = machine.on_auth(current, msg, signer, self.tables, now, self.policy)
        elif isinstance(msg, ProceedRequest):
            step = machine.on_proceed(current, msg, self.tables, now, self.policy)
        elif isinstance(msg, MethodChoice):
            step = machine.on_choice(current, msg, now)
        else:
            return machine.Refusal("unexpected", "")
        if current is not None and not isinstance(step, machine.Refusal) \
                and isinstance(msg, (ProceedRequest, MethodChoice)) \
                and signer != current.device_id:
            return machine.Refusal("device_mismatch", "")
        return step

    def _apply(self, current: machine.Txn | None, step: machine.Step | machine.Refusal) -> None:
        if isinstance(step, machine.Refusal):
            return  # dead-lettered: nothing sent
        state = step.state
        subject = state.transaction_number if state is not None else None
        for effect in step.effects:
            msg: Any = getattr(effect, "message", None)
            if isinstance(effect, machine.RequestCredit) and state is not None:
                msg = CreditRequest(state.transaction_number, "", state.merchant_code,
                                    state.sale_items, _money(state), state.method, b"")
            out = decision_of(msg)
            if out is None:
                continue
            key = subject or f"{msg.pos_id}/{msg.sale_ref}"
            sale = self.sales.get(key)
            if sale is not None:
                sale.shadow[out] += 1
                self.decisions += 1
        if state is not None and state is not current:
            self.current[state.user_id] = replace(state)

    def _recorded(self, msg: Any, correlation_id: str, where: Where) -> None:
        out = decision_of(msg)
        assert out is not None
        number = getattr(msg, "transaction_number", "") or correlation_id
        sale = self.sales.get(number)
        if sale is None and isinstance(msg, PosCompletion):
            sale = self.sales.get(f"{msg.pos_id}/{msg.sale_ref}")
        if sale is not None:  # other sales are embodiment 2's, not recomputed
            sale.recorded.setdefault(out, []).append(where)

    def findings(self) -> list[Finding]:
        for msg, correlation_id, where in self.outputs:
            self._recorded(msg, correlation_id, where)
        self.outputs = []
        out: list[Finding] = []
        for number, sale in self.sales.items():
            recorded = Counter({o: len(ws) for o, ws in sale.recorded.items()})
            if recorded == sale.shadow:
                continue
            extra = sorted((recorded - sale.shadow).elements(), key=str)
            missing = sorted((sale.shadow - recorded).elements(), key=str)
            where = sale.recorded[extra[0]][0] if extra else sale.began
            out.append(Finding(where, sale.began.timestamp_ms,
                               f"sale {number}: recorded {_fmt(extra)}, recomputed "
                               f"{_fmt(missing)} from the recorded inputs"))
        return out


def _money(t: machine.Txn) -> Money:
    return Money(t.total, t.currency)


def _fmt(outputs: list[Output]) -> str:
    def part(x: Any) -> str:
        return ",".join(map(str, x)) if isinstance(x, tuple) else str(x)
    return "; ".join(" ".join(part(x) for x in o if x != "") for o in outputs) or "nothing"
