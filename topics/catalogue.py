"""Every topic: name, key, partitions, cleanup policy, retention, producers, allowed readers.

The settlement request topics and everything the settlement join reads are co-partitioned on
the join key ``<shop_id>/<order_id>`` (same partition count, same key bytes, the default
murmur2 partitioner), so both halves of an order meet in the same partition (spec R2).
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000
JOIN_PARTITIONS = 4
CHECKPOINTS = "kessai.audit.checkpoints"
# Actor kinds that read every catalogued topic without being named on each (issue 10: the
# archiver copies the whole log). Producers are never implied this way.
READS_EVERY_TOPIC: tuple[str, ...] = ("archiver",)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    partitions: int
    producers: tuple[str, ...]
    readers: tuple[str, ...]
    description: str
    cleanup: str = "delete"
    retention_ms: int = 7 * DAY_MS
    may_hold_sealed_secrets: bool = False

    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup, "retention.ms": str(self.retention_ms)}


CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec("kessai.terminal.commands", "session", 4, ("operator", "relay"), ("terminal",),
              "The simulated user's actions (what `kessai pay` and the relay ask a terminal "
              "to do)."),
    TopicSpec("kessai.terminal.sessions", "session", 4, ("terminal",), ("terminal",),
              "Terminal-internal: wake-ups and results re-keyed by session, and the devices' "
              "deadline ticks, so each reaches the worker that holds the session's state "
              "(co-partitioned with kessai.terminal.commands)."),
    TopicSpec("kessai.order-requests", "session", 4, ("terminal", "relay"), ("shop",),
              "M1 order requests: items and delivery, never account information."),
    TopicSpec("kessai.settlement.first", "join key", JOIN_PARTITIONS, ("shop", "settlement"),
              ("settlement",),
              "M2 first settlement requests (content or its hash, and the amount)."),
    TopicSpec("kessai.settlement.first-acks", "shop_id/request_ref", 4, ("settlement",),
              ("shop",), "M3 acceptance of a first request, with a server-assigned order id."),
    TopicSpec("kessai.wakeups", "join key", 4, ("shop",), ("terminal", "relay", "selector"),
              "M4 payment requests: the shop wakes the user's device to confirm and pay."),
    TopicSpec("kessai.settlement.second", "join key", JOIN_PARTITIONS, ("terminal", "relay"),
              ("settlement",),
              "M7 second settlement requests; account info and passwords only sealed.",
              may_hold_sealed_secrets=True),
    TopicSpec("kessai.settlement.timers", "join key", JOIN_PARTITIONS, ("settlement",),
              ("settlement",), "Deadline ticks the settlement worker sends to itself."),
    TopicSpec("kessai.authorizations", "join key", JOIN_PARTITIONS, ("settlement", "gateway"),
              ("issuer",), "M8 authorization requests to the FI host, account sealed to it.",
              may_hold_sealed_secrets=True),
    TopicSpec("kessai.authorization-results", "join key", JOIN_PARTITIONS, ("issuer",),
              ("settlement", "gateway"), "FI host answers: approved or declined with a reason."),
    TopicSpec("kessai.payment-results", "join key", 4, ("settlement",),
              ("terminal", "shop", "relay"),
              "M9/M11 settlement outcomes for the user and, in DIRECT_BOTH, the shop."),
    TopicSpec("kessai.payment-results.relayed", "join key", 4, ("terminal", "relay"), ("shop",),
              "M10 results relayed by the terminal with the shop authenticator (emb. 1)."),
    TopicSpec("kessai.payment-results.acks", "join key", JOIN_PARTITIONS, ("shop",),
              ("settlement",), "M11a shop receipts for direct results (emb. 2)."),
    TopicSpec("kessai.result-inquiries", "join key", JOIN_PARTITIONS, ("shop",),
              ("settlement",), "M12 shop inquiries against the result history (emb. 3)."),
    TopicSpec("kessai.result-inquiries.answers", "join key", 4, ("settlement",), ("shop",),
              "M12r answers to inquiries, only to the shop that owns the order."),
    TopicSpec("kessai.order-status", "join key", 4, ("shop",), ("terminal", "relay", "operator"),
              "The shop's verdict per order (PAID only after verifying the authenticator)."),
    # Seeds 000/001: the relay server between limited terminals and the server wallet.
    TopicSpec("kessai.relay.terminal-traffic", "terminal session", 4, ("relay",),
              ("operator",), "Terminal ⇄ relay exchanges: what was asked, what page answered."),
    TopicSpec("kessai.relay.procedure-requests", "txn id", 4, ("relay",), ("shop",),
              "③→④ the terminal's final-payment press, redirected by the relay to the shop."),
    TopicSpec("kessai.relay.payment-information", "txn id", 4, ("shop",), ("relay",),
              "⑤ the shop's payment information, sent to the relay and never to the terminal."),
    TopicSpec("kessai.wallet.inbox", "txn id", 4, ("relay", "shop"), ("wallet",),
              "⑥ ⑩ ⑪' ⑫: payment information, login, conditions, final approval, approvals "
              "and certificates for the wallet servers.", may_hold_sealed_secrets=True),
    TopicSpec("kessai.relay.wallet-contents", "txn id", 4, ("wallet",), ("relay",),
              "⑦ … ⑬: the wallet servers' tagged contents for the relay to convert."),
    TopicSpec("kessai.shop.payment-requests", "txn id", 4, ("wallet",), ("shop",),
              "⑪ the wallet's payment request (card sealed to the gateway) via the shop.",
              may_hold_sealed_secrets=True),
    TopicSpec("kessai.gateway.payment-requests", "txn id", 4, ("shop",), ("gateway",),
              "⑪ payment requests the shop forwards, unchanged, to the payment gateway.",
              may_hold_sealed_secrets=True),
    TopicSpec("kessai.shop.approvals", "txn id", 4, ("gateway",), ("shop",),
              "⑫ the gateway's approval responses, for the shop to carry to the wallet."),
    TopicSpec("kessai.ca.registrations", "request id", 4, ("relay",), ("ca",),
              "Enrolment: card data sealed to the CA by the relay.",
              may_hold_sealed_secrets=True),
    TopicSpec("kessai.relay.ca-contents", "request id", 4, ("ca",), ("relay",),
              "CA contents for the terminal and the certificate the relay forwards to the "
              "wallet (claims 12, 13).", may_hold_sealed_secrets=True),
    TopicSpec("kessai.audit", "join key", 1,
              ("settlement", "shop", "terminal", "issuer", "relay", "wallet", "gateway", "ca"),
              ("operator",), "Audit events: conflicts, forged results, rejected requests.",
              retention_ms=30 * DAY_MS),
    TopicSpec("kessai.dead-letters", "source key", 1,
              ("settlement", "shop", "terminal", "issuer", "relay", "wallet", "gateway", "ca"),
              ("operator",),
              "Records an agent could not accept, with the reason and the original bytes.",
              retention_ms=30 * DAY_MS),
    # Issue 10 (audit): the archiver's signed chain heads.
    TopicSpec(CHECKPOINTS, "archiver", 1, ("archiver",), ("operator",),
              "Checkpoints of the audit archive: every hash chain's head, signed by the "
              "archiver, so a truncated or rewritten archive is detected.",
              retention_ms=365 * DAY_MS),
)

_BY_NAME = {t.name: t for t in CATALOGUE}


def by_name(name: str) -> TopicSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the topic catalogue") from None


def may_read(actor_kind: str, spec: TopicSpec) -> bool:
    """Whether ``actor_kind`` may read ``spec``: a named reader, or one that reads every topic
    (:data:`READS_EVERY_TOPIC`)."""
    return actor_kind in spec.readers or actor_kind in READS_EVERY_TOPIC


def readable_by(actor_kind: str) -> list[TopicSpec]:
    return [t for t in CATALOGUE if may_read(actor_kind, t)]
