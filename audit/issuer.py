"""Recomputing the FI host's decisions (seed 003 [0017], R23, R25; seed 002's credit server;
issue 10).

Every authorization the issuer admitted (from the settlement server for its orders, from the
gateway for ``gw/…`` keys; keyed by its join key) and every seed-002 credit request
(``pg/<transaction number>``) goes, in recorded order and at its recorded time, through the
issuer's own rule :func:`agents.issuer.rules.decide`, with the accounts of the issuer's key
file and, per account, the sum of the amounts approved before it — the ledger's state,
rebuilt from the record. One decision per join key (a repeat gets the stored one, R23).
The ledger is rebuilt in the order the issuer answered (the order it decided in). Each answer
the issuer recorded must say the same: approved or declined, and the reason. The
auth code is not compared: it is derived from the issuer's clock at the moment it decided,
which the record does not hold. Embodiment 2's encrypted cards are not recomputed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgpack

from agents.issuer import rules
from agents.issuer.rules import Account
from audit.decisions import Finding, Where, usable
from kessai import authenticators, crypto
from kessai.errors import SealError
from kessai.handlers import actor_kind
from kessai.money import Money
from kessai.replay import ReplayRecord
from protocols.wakeup import credit_card_context
from schemas.v1 import Authorization, AuthorizationResult
from schemas.wakeup import CreditRequest, CreditResponse

AUTHORIZATIONS = "kessai.authorizations"
AUTH_RESULTS = "kessai.authorization-results"
CREDIT_REQUESTS = "kessai.credit.requests"
CREDIT_RESPONSES = "kessai.credit.responses"
TOPICS = (AUTHORIZATIONS, AUTH_RESULTS, CREDIT_REQUESTS, CREDIT_RESPONSES)
TRUSTED = frozenset({"settlement", "gateway"})


@dataclass
class Asked:
    began: Where
    decision: rules.Decision
    answers: list[tuple[bool, str, Where]] = field(default_factory=list)


class IssuerAudit:
    name = "issuer"
    topics = TOPICS

    def __init__(self, accounts: Iterable[Account], seal_private: bytes) -> None:
        self.accounts = {a.pan: a for a in accounts}
        self.seal_private = seal_private
        self.used: dict[str, int] = {}  # pan → approved amounts so far
        self.asked: dict[str, Asked] = {}
        self.answers: list[tuple[str, bool, str, Where]] = []  # matched at the end
        self.requests: dict[str, tuple[tuple[str, str] | None, Money, Where]] = {}
        self.decisions = 0

    def feed(self, r: ReplayRecord) -> None:
        if r.topic not in TOPICS or not usable(r):
            return
        msg, sender = r.message, r.sender or ""
        key = (r.key or b"").decode("utf-8", "replace")
        if r.topic == AUTHORIZATIONS and isinstance(msg, Authorization) and sender in TRUSTED \
                and (sender == "gateway") == msg.join_key.startswith("gw/") \
                and msg.join_key == r.correlation_id:
            self._decide(msg.join_key, self._open(msg.account_sealed,
                                                  authenticators.issuer_account_context(
                                                      msg.join_key)), msg.amount, r)
        elif r.topic == CREDIT_REQUESTS and isinstance(msg, CreditRequest) \
                and actor_kind(sender) == "paygate" \
                and msg.join_key == f"pg/{msg.transaction_number}":
            self._decide(msg.join_key, self._open(msg.card_sealed,
                                                  credit_card_context(msg.join_key)),
                         msg.amount, r)
        elif actor_kind(sender) == "issuer" and (
                (r.topic == AUTH_RESULTS and isinstance(msg, AuthorizationResult)
                 and key == msg.join_key)
                or (r.topic == CREDIT_RESPONSES and isinstance(msg, CreditResponse))):
            self._answer(msg.join_key, msg.approved, msg.reason, r)

    def _open(self, sealed: bytes, context: bytes) -> tuple[str, str] | None:
        try:
            return authenticators.unpack_account(crypto.open_sealed(self.seal_private, sealed,
                                                                    context))
        except (SealError, msgpack.UnpackException, ValueError, KeyError, TypeError):
            return None

    def _decide(self, join_key: str, card: tuple[str, str] | None, amount: Money,
                r: ReplayRecord) -> None:
        # Decided later, in the order the issuer answered (see ``_replay``).
        self.requests.setdefault(join_key, (card, amount, Where.of(r)))

    def _answer(self, join_key: str, approved: bool, reason: str, r: ReplayRecord) -> None:
        self.answers.append((join_key, approved, reason, Where.of(r)))

    def _replay(self) -> None:
        """The ledger rebuilt in the order the issuer decided — the order of its first answer
        per join key (it consumes several partitions, so not always the requests' order; near
        an account's limit the order decides) — then the requests never answered."""
        first: dict[str, int] = {}
        for i, (k, _, _, _) in enumerate(self.answers):
            first.setdefault(k, i)
        pending = sorted(self.requests, key=lambda k: (k not in first, first.get(k, 0),
                                                       self.requests[k][2].timestamp_ms))
        for k in pending:
            card, amount, where = self.requests.pop(k)
            pan, expiry = card if card is not None else (None, None)
            account = self.accounts.get(pan) if pan is not None else None
            used = self.used.get(pan, 0) if account is not None and pan is not None else 0
            decision = rules.decide(account, pan, expiry, amount, used, where.timestamp_ms,
                                    join_key=k)
            if decision.approved and pan is not None:
                self.used[pan] = used + amount.minor
            self.asked[k] = Asked(where, decision)
            self.decisions += 1

    def findings(self) -> list[Finding]:
        self._replay()
        out = []
        for k, approved, reason, w in self.answers:
            asked = self.asked.get(k)
            if asked is None:
                out.append(Finding(w, w.timestamp_ms, f"{k}: an answer to no authorization "
                                                      "the issuer was asked"))
            else:
                asked.answers.append((approved, reason, w))
        self.answers = []
        for k, asked in self.asked.items():
            d = asked.decision
            for approved, reason, w in asked.answers:
                if (approved, reason) != (d.approved, d.reason):
                    out.append(Finding(w, asked.began.timestamp_ms,
                                       f"{k}: recorded {_said(approved, reason)}, recomputed "
                                       f"{_said(d.approved, d.reason)} from the recorded "
                                       "request and the ledger before it"))
        return out


def _said(approved: bool, reason: str) -> str:
    return "approved" if approved else f"declined ({reason})"
