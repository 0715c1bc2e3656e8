"""Recomputing what the relay showed the terminal at the end of a set-wallet payment (seeds
000/001 ⑬, R16; issue 10).

The relay converts the wallet's contents for the terminal; its flow
(:func:`agents.relay.flow.on_wallet_contents`) takes a payment awaiting approval to its end on
the wallet's ``approval`` or ``declined`` contents, and the page it then serves is of that
kind. Every such page the relay recorded on ``kessai.relay.terminal-traffic`` must therefore
repeat the wallet's recorded contents for the transaction (which :mod:`audit.wallet` checks
against the gateway's signed response): an ``approval`` page for a declined payment, or for
one the wallet never answered, is reported.
"""

from __future__ import annotations

from agents.relay import flow
from audit.decisions import Finding, Where, usable
from kessai.replay import ReplayRecord
from schemas.relay import TerminalTraffic, WalletContents

CONTENTS = "kessai.relay.wallet-contents"
TRAFFIC = "kessai.relay.terminal-traffic"
TOPICS = (CONTENTS, TRAFFIC)
SHOWN = ("approval", "declined")


class RelayAudit:
    name = "relay"
    topics = TOPICS

    def __init__(self) -> None:
        self.ends: dict[str, tuple[str, Where]] = {}  # txn → the wallet's last word
        self.pages: list[tuple[str, str, Where]] = []  # matched at the end
        self.decisions = 0

    def feed(self, r: ReplayRecord) -> None:
        if r.topic not in TOPICS or not usable(r):
            return
        msg = r.message
        if isinstance(msg, WalletContents) and r.sender == msg.wallet_id \
                and flow.on_wallet_contents(flow.APPROVING, msg.kind) == flow.DONE:
            self.ends.setdefault(msg.txn_id, (msg.kind, Where.of(r)))
        elif isinstance(msg, TerminalTraffic) and r.sender == "relay" \
                and msg.direction == "page" and msg.kind in SHOWN:
            self.pages.append((msg.txn_id, msg.kind, Where.of(r)))

    def findings(self) -> list[Finding]:
        out = []
        for txn, shown, where in self.pages:
            self.decisions += 1
            end = self.ends.get(txn)
            if end is None:
                out.append(Finding(where, where.timestamp_ms, f"txn {txn}: the terminal was "
                                   f"shown a {shown} page, but no wallet sent approval or "
                                   "declined contents for it"))
            elif end[0] != shown:
                out.append(Finding(where, end[1].timestamp_ms, f"txn {txn}: the terminal was "
                                   f"shown a {shown} page, the wallet's contents said "
                                   f"{end[0]}"))
        self.pages = []
        return out
