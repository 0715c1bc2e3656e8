"""Recomputing the server wallets' approval step (seeds 000/001 ⑫→⑬, R16; issue 10).

The shop's payment information the relay handed each wallet (⑥) and the gateway's approval
response a shop carried back (⑫) go through the wallet's own checks
(:func:`agents.wallet.checks.payment_information`,
:func:`~agents.wallet.checks.approval_response`: the gateway's signature, this transaction,
wallet, shop and amount). What the wallet then showed the user through the relay must follow:
``approval`` contents for a verified approval, ``declined`` for a verified decline, neither
for an approval that does not verify. The wallet's sessions (cookies, login, conditions)
are not replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.wallet import checks
from agents.wallet.checks import Refused
from audit.decisions import Finding, Where, usable
from kessai.handlers import actor_kind
from kessai.keys import Registry
from kessai.replay import ReplayRecord
from schemas.relay import (
    ForwardedApproval,
    PaymentInformation,
    WalletContents,
    WalletPaymentInformation,
)

# The wallet's topics (agents/wallet/agent.py).
INBOX = "kessai.wallet.inbox"
CONTENTS = "kessai.relay.wallet-contents"
TOPICS = (INBOX, CONTENTS)
SHOWN = ("approval", "declined")


@dataclass
class Payment:
    began: Where
    info: PaymentInformation
    kind: str = ""  # what the first verified approval response calls for
    shown: list[tuple[str, Where]] = field(default_factory=list)


class WalletAudit:
    name = "wallet"
    topics = TOPICS

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.payments: dict[tuple[str, str], Payment] = {}
        self.contents: list[tuple[str, str, str, Where]] = []  # matched at the end
        self.decisions = 0

    def feed(self, r: ReplayRecord) -> None:
        if r.topic not in TOPICS or not usable(r):
            return
        msg, kind = r.message, actor_kind(r.sender or "")
        if r.topic == CONTENTS:
            if isinstance(msg, WalletContents) and r.sender == msg.wallet_id \
                    and msg.kind in SHOWN:
                self.contents.append((msg.wallet_id, msg.txn_id, msg.kind, Where.of(r)))
            return
        if isinstance(msg, WalletPaymentInformation) and kind == "relay":
            if (msg.wallet_id, msg.txn_id) in self.payments:
                return
            try:
                info, _ = checks.payment_information(msg.payment_information, self.registry,
                                                     msg.wallet_id, msg.txn_id)
            except Refused:
                return  # no session: nothing to show
            self.payments[(msg.wallet_id, msg.txn_id)] = Payment(Where.of(r), info)
        elif isinstance(msg, ForwardedApproval) and kind == "shop":
            payment = self.payments.get((msg.wallet_id, msg.txn_id))
            if payment is None or payment.kind or r.sender != payment.info.shop_id:
                return
            try:
                response = checks.approval_response(msg.original, self.registry, payment.info,
                                                    msg.wallet_id)
            except Refused:
                return
            payment.kind = "approval" if response.approved else "declined"
            self.decisions += 1

    def findings(self) -> list[Finding]:
        out = []
        for wallet, txn, shown, where in self.contents:
            payment = self.payments.get((wallet, txn))
            if payment is None:
                out.append(Finding(where, where.timestamp_ms, f"txn {txn} at {wallet}: "
                                   f"{shown} contents for no payment the wallet verified"))
            elif shown != payment.kind:
                wanted = payment.kind or "nothing (no approval response that verifies)"
                out.append(Finding(where, payment.began.timestamp_ms,
                                   f"txn {txn} at {wallet}: recorded {shown} contents, "
                                   f"recomputed {wanted} from the gateway's response the "
                                   "shop carried"))
        self.contents = []
        return out
