"""Recomputing the payment gateway's approvals (seeds 000/001, R15, R16, R41, R42; issue 10).

Every wallet payment request a shop forwarded goes, at its recorded time, through the
gateway's own checks (:func:`agents.gateway.checks.admit` and
:func:`~agents.gateway.checks.examine`, with the gateway's sealing key and this machine's
``KESSAI_GATEWAY_HOSTS`` / ``KESSAI_GATEWAY_REVOKED`` policy). Then, per transaction:

- declined by the checks → no authorization may be recorded, and every approval response must
  be a decline with the same reason (R41);
- accepted → one authorization under ``gw/<txn>`` for the payment information's amount and
  shop, and every approval response must repeat the settlement host's recorded answer
  (approved or not, reason, auth code) for that amount (R16).

The first admitted request of a transaction decides it, as in the gateway (a repeat gets the
stored answer; a different request for a taken transaction is refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.gateway import checks
from agents.gateway.checks import Accepted, Declined, NotARequest
from agents.gateway.routing import GatewayPolicy
from audit.decisions import Finding, Where, usable
from kessai.handlers import actor_kind
from kessai.keys import Registry
from kessai.replay import ReplayRecord
from schemas.relay import ApprovalResponse, ForwardedPaymentRequest
from schemas.v1 import Authorization, AuthorizationResult

# The gateway's topics (agents/gateway/agent.py); its join keys are "gw/<txn id>".
REQUESTS = "kessai.gateway.payment-requests"
AUTHORIZATIONS = "kessai.authorizations"
AUTH_RESULTS = "kessai.authorization-results"
APPROVALS = "kessai.shop.approvals"
JOIN_PREFIX = "gw/"
TOPICS = (REQUESTS, AUTHORIZATIONS, AUTH_RESULTS, APPROVALS)


@dataclass
class GatewayTxn:
    began: Where
    verdict: Accepted | Declined
    answer: AuthorizationResult | None = None
    authorizations: list[tuple[Authorization, Where]] = field(default_factory=list)
    approvals: list[tuple[ApprovalResponse, Where]] = field(default_factory=list)


# What the record holds per txn, gathered apart from the requests: within one millisecond an
# output may be archived before its input, so they are matched once everything is read.
Outputs = dict[str, list[tuple[object, str, Where]]]


class GatewayAudit:
    name = "gateway"
    topics = TOPICS

    def __init__(self, registry: Registry, seal_private: bytes,
                 policy: GatewayPolicy | None = None) -> None:
        self.registry = registry
        self.seal_private = seal_private
        self.policy = policy or GatewayPolicy.from_env()
        self.txns: dict[str, GatewayTxn] = {}
        self.outputs: Outputs = {}
        self.decisions = 0

    def feed(self, r: ReplayRecord) -> None:
        if r.topic not in TOPICS or not usable(r):
            return
        msg, kind = r.message, actor_kind(r.sender or "")
        key = (r.key or b"").decode("utf-8", "replace")
        if r.topic == REQUESTS and isinstance(msg, ForwardedPaymentRequest) and kind == "shop":
            try:
                request, _ = checks.admit(msg, self.registry)
            except NotARequest:
                return  # dead-lettered by the gateway: nobody is answered
            if request.txn_id in self.txns:
                return  # a repeat: the stored answer again
            verdict = checks.examine(request, r.sender or "", self.registry, self.seal_private,
                                     r.timestamp_ms, self.policy)
            self.txns[request.txn_id] = GatewayTxn(Where.of(r), verdict)
            self.decisions += 1
        elif (r.topic == AUTHORIZATIONS and isinstance(msg, Authorization)
              and r.sender == "gateway" and msg.join_key.startswith(JOIN_PREFIX)) \
                or (r.topic == AUTH_RESULTS and isinstance(msg, AuthorizationResult)
                    and kind == "issuer" and key == msg.join_key) \
                or (r.topic == APPROVALS and isinstance(msg, ApprovalResponse)
                    and r.sender == "gateway"):
            txn_id = msg.txn_id if isinstance(msg, ApprovalResponse) \
                else msg.join_key.removeprefix(JOIN_PREFIX)
            if isinstance(msg, ApprovalResponse) or msg.join_key.startswith(JOIN_PREFIX):
                self.outputs.setdefault(txn_id, []).append((msg, r.sender or "", Where.of(r)))

    def findings(self) -> list[Finding]:
        out = []
        for txn_id, outputs in self.outputs.items():
            txn = self.txns.get(txn_id)
            if txn is None:
                out += [Finding(w, w.timestamp_ms, f"txn {txn_id}: an approval response for "
                                                   "no payment request the gateway checked")
                        for m, _, w in outputs if isinstance(m, ApprovalResponse)]
                continue
            for m, sender, w in outputs:
                if isinstance(m, Authorization):
                    txn.authorizations.append((m, w))
                elif isinstance(m, ApprovalResponse):
                    txn.approvals.append((m, w))
                elif isinstance(m, AuthorizationResult) and txn.answer is None \
                        and isinstance(txn.verdict, Accepted) and sender == txn.verdict.host:
                    txn.answer = m
        self.outputs = {}
        for txn_id, txn in self.txns.items():
            out += [Finding(w, txn.began.timestamp_ms, f"txn {txn_id}: {d}")
                    for w, d in _differences(txn)]
        return out


def _differences(txn: GatewayTxn) -> list[tuple[Where, str]]:
    v = txn.verdict
    if isinstance(v, Declined):
        out = [(w, f"an authorization was sent, the checks decline the request ({v.reason})")
               for _, w in txn.authorizations]
        out += [(w, f"recorded {_said(m)}, recomputed declined ({v.reason}) from the "
                    "recorded request")
                for m, w in txn.approvals if m.approved or m.reason != v.reason]
        return out
    amount, payee = v.info.amount, f"payee:{v.info.shop_id}"
    if not txn.authorizations:
        return [(txn.began, "the checks accept the request, but no authorization was sent")]
    out = [(w, f"authorization for {a.amount} to {a.payee}, recomputed {amount} to {payee}")
           for a, w in txn.authorizations if (a.amount, a.payee) != (amount, payee)]
    for m, w in txn.approvals:
        if txn.answer is None:
            out.append((w, f"recorded {_said(m)}, but the settlement host's answer is not "
                           "in the record"))
            continue
        a = txn.answer
        if (m.approved, m.reason, m.auth_code, m.amount) != (a.approved, a.reason,
                                                             a.auth_code, amount):
            out.append((w, f"recorded {_said(m)} for {m.amount}, recomputed "
                           f"{'approved' if a.approved else 'declined'} ({a.reason}) for "
                           f"{amount} from the host's answer"))
    return out


def _said(m: ApprovalResponse) -> str:
    return f"approved ({m.auth_code})" if m.approved else f"declined ({m.reason})"
