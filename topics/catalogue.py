"""Every topic: name, key, partitions, cleanup policy, retention, producers, allowed readers.

The settlement request topics and everything the settlement join reads are co-partitioned on
the join key ``<shop_id>/<order_id>`` (same partition count, same key bytes, the default
murmur2 partitioner), so both halves of an order meet in the same partition (spec R2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DAY_MS = 24 * 3600 * 1000
JOIN_PARTITIONS = 4
CLIENT_PARTITIONS = 4  # seed 004: every selector topic, keyed by client
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
    TopicSpec("kessai.order-requests", "session", 4, ("terminal", "relay", "selector", "wum"),
              ("shop",),
              "M1 order requests: items and delivery, never account information."),
    TopicSpec("kessai.settlement.first", "join key", JOIN_PARTITIONS, ("shop", "settlement"),
              ("settlement",),
              "M2 first settlement requests (content or its hash, and the amount)."),
    TopicSpec("kessai.settlement.first-acks", "shop_id/request_ref", 4, ("settlement",),
              ("shop",), "M3 acceptance of a first request, with a server-assigned order id."),
    # M4 wake-ups are addressed by topic: one topic per channel (see WAKEUP_TOPICS), so each
    # reaches only the party it is for and nobody reads and drops others' wake-ups.
    TopicSpec("kessai.wakeups", "join key", 4, ("shop",), ("terminal",),
              "M4 payment requests for the users' terminals: the shop wakes the device that "
              "placed the order to confirm and pay."),
    TopicSpec("kessai.wakeups.relay", "join key", 4, ("shop",), ("relay",),
              "M4 payment requests for orders the relay placed for a limited terminal."),
    TopicSpec("kessai.settlement.second", "join key", JOIN_PARTITIONS,
              ("terminal", "relay", "wallet"), ("settlement",),
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
    # Seed 004: the multi-wallet selector and master/slave server wallets. Every topic here is
    # keyed by client id with CLIENT_PARTITIONS partitions, so a client's wake-ups, stored
    # choice, module brand info, prompts' replies, live brand answers and deadline ticks meet
    # in one partition, at the worker that holds the client's state.
    TopicSpec("kessai.wakeups.selector", "client", CLIENT_PARTITIONS, ("shop",), ("selector",),
              "M4 payment requests for orders a multi-wallet client placed through its "
              "selector (seed 004 wake-up messages)."),
    TopicSpec("kessai.selector.commands", "client", CLIENT_PARTITIONS, ("operator",),
              ("selector",), "A client's purchases, placed through its selector."),
    TopicSpec("kessai.selector.preselections", "client", CLIENT_PARTITIONS,
              ("operator", "selector"), ("selector",),
              "Ex 1: the module each client chose before payment (latest wins).",
              cleanup="compact"),
    TopicSpec("kessai.wallet.brand-info", "client", CLIENT_PARTITIONS, ("wum",), ("selector",),
              "Ex 4: the brands each wallet connection module's server settles, published by "
              "the module at start (a redeploy refreshes it).", cleanup="compact"),
    TopicSpec("kessai.wallet.brand-queries", "client", CLIENT_PARTITIONS, ("selector", "wum"),
              ("serverwallet",), "Ex 5, 6: live brand-info questions to the server wallets."),
    TopicSpec("kessai.wallet.brand-answers", "client", CLIENT_PARTITIONS, ("wallet",),
              ("selector",), "Ex 5: the server wallets' answers to the selector."),
    TopicSpec("kessai.wum.brand-answers", "client", CLIENT_PARTITIONS, ("wallet",),
              ("wum",), "Ex 6: the server wallets' answers to the common module."),
    TopicSpec("kessai.wakeups.wum", "client", CLIENT_PARTITIONS, ("shop",), ("wum",),
              "M4 payment requests for a client without a selector: its one module takes "
              "them (Ex 6, and the conventional module of Ex 7-12)."),
    TopicSpec("kessai.wum.timers", "client", CLIENT_PARTITIONS, ("wum",), ("wum",),
              "Deadline ticks the common module sends to itself (Ex 6 brand questions)."),
    TopicSpec("kessai.selector.prompts", "client", CLIENT_PARTITIONS, ("selector", "wallet"),
              ("operator", "selector"),
              "Ex 2, 9, 10, 12: choose a module or a slave, type an address (the selector's "
              "console shows them to the user)."),
    TopicSpec("kessai.selector.replies", "client", CLIENT_PARTITIONS, ("operator", "selector"),
              ("selector",), "The user's answers to the selector's prompts."),
    TopicSpec("kessai.wallet.replies", "client", CLIENT_PARTITIONS,
              ("operator", "wallet", "selector"),
              ("serverwallet",), "The user's answers to a master server wallet's prompts."),
    TopicSpec("kessai.selector.timers", "client", CLIENT_PARTITIONS, ("selector",),
              ("selector",), "Deadline ticks the selector sends to itself."),
    TopicSpec("kessai.wum.wakeups", "client", CLIENT_PARTITIONS, ("selector",), ("wum",),
              "M4 handed over: each wake-up, unchanged, to exactly one module."),
    TopicSpec("kessai.wallet.sessions", "client", CLIENT_PARTITIONS, ("wum",), ("serverwallet",),
              "M7/M8: a module asks its paired server wallet (or master) to settle."),
    TopicSpec("kessai.wallet.slaves", "client", CLIENT_PARTITIONS, ("wallet",), ("serverwallet",),
              "Ex 7-12: master ⇄ slave traffic (the virtual module's proxy, the certificate "
              "fetch).", may_hold_sealed_secrets=True),
    TopicSpec("kessai.wallet.timers", "client", CLIENT_PARTITIONS, ("wallet",),
              ("serverwallet",), "Deadline ticks a master server wallet sends to itself "
              "(its prompts to the user, Ex 9, 10, 12)."),
    TopicSpec("kessai.wallet.settled", "client", CLIENT_PARTITIONS, ("wallet",),
              ("wum", "operator"), "The settlement each wake-up led to, for its module."),
    TopicSpec("kessai.selector.routing-events", "client", CLIENT_PARTITIONS,
              ("selector", "wum", "wallet"), ("operator", "selector"),
              "Every routing decision: mode, candidates, chosen target, reason (the selector "
              "closes the prompts its page shows on them).",
              retention_ms=30 * DAY_MS),
    TopicSpec("kessai.wakeups.unroutable", "client", CLIENT_PARTITIONS,
              ("selector", "wum", "wallet"), ("operator",),
              "Wake-ups no module or server wallet could take, with the reason.",
              retention_ms=30 * DAY_MS),
    TopicSpec("kessai.audit", "join key", 1,
              ("settlement", "shop", "terminal", "issuer", "relay", "wallet", "gateway", "ca",
               "selector", "wum"),
              ("operator",), "Audit events: conflicts, forged results, rejected requests.",
              retention_ms=30 * DAY_MS),
    TopicSpec("kessai.dead-letters", "source key", 1,
              ("settlement", "shop", "terminal", "issuer", "relay", "wallet", "gateway", "ca",
               "selector", "wum"),
              ("operator",),
              "Records an agent could not accept, with the reason and the original bytes.",
              retention_ms=30 * DAY_MS),
    # Issue 10 (audit): the archiver's signed chain heads.
    TopicSpec(CHECKPOINTS, "archiver", 1, ("archiver",), ("operator",),
              "Checkpoints of the audit archive: every hash chain's head, signed by the "
              "archiver, so a truncated or rewritten archive is detected.",
              retention_ms=365 * DAY_MS),
)

# Seed 002 (EP 1 280 115, mobile wake-up payment), embodiment 1. The gateway's inputs and its
# credit traffic are keyed by user id, the phone's by device id, the POS's by POS id, so each
# agent's state and its timers stay on one partition. Wake-ups are addressed explicitly: the
# reception message is keyed by the device id and names it (no device reads another's).
_SEED_002 = (
    TopicSpec("kessai.pos.sales", "pos id", 4, ("operator",), ("pos",),
              "Sd1/Sd2 the clerk's transaction information and whether the customer pays by "
              "the wake-up service."),
    TopicSpec("kessai.shortrange.user-ids", "pos id", 4, ("device",), ("pos",),
              "M1 the user id the phone hands to the POS over short range (nothing secret)."),
    TopicSpec("kessai.paygate.txn-requests", "user id", 4, ("pos",), ("paygate",),
              "M2 requests for a transaction number: goods, merchant, user id; never a card."),
    TopicSpec("kessai.pos.txn-numbers", "pos id", 4, ("paygate",), ("pos",),
              "M3 the transaction number the gateway issued for a sale."),
    TopicSpec("kessai.pos.completions", "pos id", 4, ("paygate",), ("pos",),
              "M18 completion (or the stop, with its reason) of a sale's payment."),
    TopicSpec("kessai.pos.receipts", "pos id", 4, ("pos",), ("operator",),
              "Sd7 the receipts the POS prints."),
    TopicSpec("kessai.direction.mail-requests", "device id", 4, ("paygate",), ("direction",),
              "M4 the gateway asks for the wake-up mail to the user's registered device."),
    TopicSpec("kessai.device.wakeups", "device id", 4, ("direction",), ("device",),
              "M5 reception messages, each addressed to exactly one device (key and field)."),
    TopicSpec("kessai.direction.mail-fetch", "device id", 4, ("device",), ("direction",),
              "M6 a device fetches the mail waiting in its own mailbox."),
    TopicSpec("kessai.device.mail", "device id", 4, ("direction",), ("device",),
              "M7 the mail including commands, delivered to its mailbox's owner."),
    TopicSpec("kessai.paygate.sessions", "user id", 4, ("device",), ("paygate",),
              "M8 M10 M13 M15 the phone's side of its session with the gateway; N3 the "
              "confirmation reply (password sealed to the gateway).",
              may_hold_sealed_secrets=True),
    TopicSpec("kessai.device.sessions", "device id", 4, ("paygate",), ("device",),
              "M9 M11 M12 M14 M19 the gateway's side: certificate, error, details, methods, "
              "completion; N2 the confirmation mail of embodiment 2; V4 the user's history "
              "as HTML (M21, no card)."),
    TopicSpec("kessai.credit.requests", "user id", 4, ("paygate",), ("issuer",),
              "M16 credit requests; the card number and expiry only sealed to the credit "
              "server.", may_hold_sealed_secrets=True),
    TopicSpec("kessai.credit.responses", "user id", 4, ("issuer",), ("paygate",),
              "M17 the credit server's completion or refusal."),
    TopicSpec("kessai.paygate.timers", "user id", 4, ("paygate",), ("paygate",),
              "Confirmation and device deadlines the gateway sends to itself."),
    TopicSpec("kessai.device.commands", "device id", 4, ("operator", "device"), ("device",),
              "The phone user's presses (log in, Agree / Not agree, method), from the "
              "simulated user or the phone's own screen; no password (a typed reply only "
              "sealed to the gateway).", may_hold_sealed_secrets=True),
    TopicSpec("kessai.device.screens", "device id", 4, ("device",), ("operator",),
              "What each phone shows, for the operator's journey print."),
    TopicSpec("kessai.device.timers", "device id", 4, ("device",), ("device",),
              "Response deadlines and auth-result expiries the phone sends to itself."),
    # Embodiment 2: the encrypted card number (the confirmation mail and its reply travel on
    # kessai.device.sessions / kessai.paygate.sessions; the password only sealed).
    TopicSpec("kessai.paygate.card-requests", "user id", 4, ("pos",), ("paygate",),
              "N1 the user id and merchant code from a POS, for an encrypted card number."),
    TopicSpec("kessai.pos.card-numbers", "pos id", 4, ("paygate",), ("pos",),
              "N4/N5 the encrypted card number (ciphertext only), or the rejection."),
    TopicSpec("kessai.credit.keys", "card digest", 4, ("paygate",), ("issuer",),
              "N6 ciphertext and its decryption key, the key sealed to the credit server.",
              may_hold_sealed_secrets=True),
    TopicSpec("kessai.credit.pos-requests", "card digest", 4, ("pos",), ("issuer",),
              "N7 the POS's credit requests with the encrypted card number.",
              may_hold_sealed_secrets=True),
    TopicSpec("kessai.pos.credit-answers", "pos id", 4, ("issuer",), ("pos",),
              "N8/N9 allowance or failure of authentication, to the POS."),
    TopicSpec("kessai.credit.timers", "card digest", 4, ("issuer",), ("issuer",),
              "A POS request whose key has not come in time: the credit server's tick to "
              "itself (co-partitioned with kessai.credit.pos-requests)."),
)


def _with_producers(specs: tuple[TopicSpec, ...], names: tuple[str, ...],
                    kinds: tuple[str, ...]) -> tuple[TopicSpec, ...]:
    """``specs`` with ``kinds`` added to the producers of the topics ``names``."""
    return tuple(replace(t, producers=(*t.producers, *kinds)) if t.name in names else t
                 for t in specs)


CATALOGUE = _with_producers((*CATALOGUE, *_SEED_002), ("kessai.audit", "kessai.dead-letters"),
                            ("pos", "device", "direction", "paygate"))

# Seed 002, added to the block above: V3 ([0117]–[0119], Fig. 20), the web shop in place of
# the POS and the mobile terminal. It asks the gateway on the POS's topic (same contract,
# P3/P4, G10) and gets its transaction numbers and completions on its own topics, so no POS
# reads a web shop's replies nor the other way round. None of these carries a card number.
_SEED_002_MORE = (
    TopicSpec("kessai.webshop.orders", "shop id", 4, ("operator", "webshop"), ("webshop",),
              "V3 checkouts at the web shop: goods priced by the shop and the user id typed "
              "by the customer (no card, no password)."),
    TopicSpec("kessai.webshop.txn-numbers", "shop id", 4, ("paygate",), ("webshop",),
              "V3 M3 the transaction number the gateway issued for a web order."),
    TopicSpec("kessai.webshop.completions", "shop id", 4, ("paygate",), ("webshop",),
              "V3 M18 completion (or the stop, with its reason) over network 10A."),
    TopicSpec("kessai.webshop.results", "shop id", 4, ("webshop",), ("operator",),
              "V3 each web order's outcome as the shop's page shows it."),
    # Sd4/P2: the POS's polls of its mobile terminal, sent to itself by its poll timer
    # (co-partitioned with kessai.pos.sales and kessai.shortrange.user-ids).
    TopicSpec("kessai.pos.polls", "pos id", 4, ("pos",), ("pos",),
              "Sd4 a poll of the mobile terminal that found a user id for a waiting sale."),
    # V4 ([0113], [0120], M21): the phone asks for its user's history; the HTML rendering of
    # table 154b comes back on kessai.device.sessions.
    TopicSpec("kessai.paygate.history-requests", "user id", 4, ("device",), ("paygate",),
              "V4 M21 a phone asks for its user's transaction history (electronic receipt)."),
)
CATALOGUE = _with_producers((*CATALOGUE, *_SEED_002_MORE),
                            ("kessai.paygate.txn-requests", "kessai.audit",
                             "kessai.dead-letters"), ("webshop",))

_BY_NAME = {t.name: t for t in CATALOGUE}

# Wake-up addressing (issue 8 item 3, DESIGN §4): a shop's M4 goes back to the channel that
# placed the order — the kind of the order request's sender — on that channel's own topic. No
# reader sees a wake-up meant for another channel, so none reads and drops others' wake-ups.
# Keyed as each topic's spec says: by join key, or by client for the selector.
WAKEUP_TOPICS: dict[str, str] = {
    "terminal": "kessai.wakeups",
    "relay": "kessai.wakeups.relay",
    "selector": "kessai.wakeups.selector",
    "wum": "kessai.wakeups.wum",
}


def wakeup_topic(channel: str) -> str:
    """The wake-up topic of an order placed by ``channel`` (an actor kind).

    Raises:
        KeyError: no wake-up channel of that name.
    """
    try:
        return WAKEUP_TOPICS[channel]
    except KeyError:
        raise KeyError(f"no wake-up channel {channel!r} (channels: "
                       f"{', '.join(WAKEUP_TOPICS)})") from None


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
