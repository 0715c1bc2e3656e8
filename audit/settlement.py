"""Recomputing every settlement outcome from the recorded inputs (seed 003; issue 10).

The recorded 1st and 2nd requests, FI answers, shop receipts and deadline ticks are fed, in the
order they were recorded, to the very functions the settlement join decides with
(:mod:`agents.settlement.join`, its collation, and :func:`~agents.settlement.userauth.
check_second` for user authentication), after the same admission the settlement worker's door
and handlers apply (sender kind, record key, the shop speaking for itself, a message id seen
once). The outcome each order reaches is compared with the outcomes recorded on
``kessai.payment-results``; the same replay gives the join's outputs for `audit shadow`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from agents.settlement import join
from agents.settlement.userauth import SettlementSecrets, check_second
from audit.findings import Report
from kessai import authenticators, envelope
from kessai.errors import KessaiError
from kessai.handlers import actor_kind
from kessai.keys import Registry
from kessai.replay import ReplayRecord
from schemas.v1 import (
    AssignedFirst,
    AuthorizationResult,
    DeadlineTick,
    FirstRequest,
    PaymentResult,
    ResultAck,
    SecondRequest,
)

FIRST = "kessai.settlement.first"
SECOND = "kessai.settlement.second"
TIMERS = "kessai.settlement.timers"
AUTH_RESULTS = "kessai.authorization-results"
AUTHORIZATIONS = "kessai.authorizations"
ACKS = "kessai.payment-results.acks"
RESULTS = "kessai.payment-results"
#: Every topic the recomputation reads.
TOPICS = (FIRST, SECOND, TIMERS, AUTH_RESULTS, AUTHORIZATIONS, ACKS, RESULTS)


@dataclass(frozen=True)
class Where:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int = 0


@dataclass
class Order:
    """One join key as the replay and the record see it."""

    state: join.JoinState | None = None
    outcome: str | None = None  # the first terminal outcome the replay reached
    shadow: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    recorded: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    results: list[tuple[str, Where]] = field(default_factory=list)  # recorded outcomes
    charges: dict[str, Where] = field(default_factory=dict)  # approved auth codes
    first_seen: Where | None = None


def policy_from(values: dict[str, int]) -> join.Policy:
    return join.Policy(values["t_first_ms"], values["t_second_ms"], values["t_history_ms"],
                       values["t_authorize_ms"], values["result_redelivery_ms"])


class SettlementAudit:
    """Feed records with :meth:`feed` (in recorded order), then :meth:`report`."""

    def __init__(self, registry: Registry, policy: join.Policy,
                 secrets: SettlementSecrets | None) -> None:
        self.registry = registry
        self.policy = policy
        self.secrets = secrets
        self.orders: dict[str, Order] = {}
        self._seen_ids: set[str] = set()

    def order(self, key: str, where: Where) -> Order:
        order = self.orders.get(key)
        if order is None:
            order = self.orders[key] = Order(first_seen=where)
        return order

    def feed(self, r: ReplayRecord) -> None:
        if r.topic not in TOPICS or not r.signature_valid or r.error or r.message is None:
            return  # the door dead-letters it; the envelope check reports it
        if r.message_id in self._seen_ids:
            return  # the door's replay check: the same message id again
        self._seen_ids.add(r.message_id or "")
        kind = actor_kind(r.sender or "")
        key = (r.key or b"").decode("utf-8", "replace")
        where = Where(r.topic, r.partition, r.offset, r.timestamp_ms)
        msg = r.message
        now = r.timestamp_ms
        if r.topic == RESULTS and isinstance(msg, PaymentResult) and kind == "settlement":
            k = authenticators.join_key(msg.shop_id, msg.order_id)
            order = self.order(k, where)
            order.results.append((msg.outcome, where))
            order.recorded[(RESULTS, msg.recipient, msg.outcome)] += 1
        elif r.topic == AUTHORIZATIONS and kind == "settlement":
            self.order(key, where).recorded[(AUTHORIZATIONS, "issuer", "")] += 1
        elif r.topic == AUTH_RESULTS and isinstance(msg, AuthorizationResult) \
                and kind == "issuer" and key == msg.join_key:
            order = self.order(key, where)
            if msg.approved:
                order.charges.setdefault(msg.auth_code, where)
            self._step(key, order, join.on_authorization_result(order.state, msg.approved, now,
                                                                self.policy))
        elif r.topic == FIRST:
            first = self._first(msg, kind, r.sender or "")
            if first is None or not first.order_id:
                return  # settlement re-keys it under an assigned id (AssignedFirst)
            k = authenticators.join_key(first.shop_id, first.order_id)
            if key != k:
                return  # settlement rejects a record key that is not the join key
            order = self.order(k, where)
            self._step(k, order, join.on_first(order.state, k, r.partition, first,
                                               join.body_digest(first), now, self.policy))
        elif r.topic == SECOND and isinstance(msg, SecondRequest) \
                and kind in ("terminal", "relay", "wallet"):  # wallet: seed 004
            k = authenticators.join_key(msg.shop_id, msg.order_id)
            if key != k:
                return
            order = self.order(k, where)
            problem = None if self.secrets is None else check_second(
                msg, r.sender or "", k, self.registry, self.secrets)
            self._step(k, order, join.on_second(order.state, k, r.partition, msg,
                                                join.body_digest(msg), problem, now,
                                                self.policy))
        elif r.topic == ACKS and isinstance(msg, ResultAck) and r.sender == msg.shop_id \
                and key == authenticators.join_key(msg.shop_id, msg.order_id):
            order = self.order(key, where)
            self._step(key, order, join.on_shop_ack(order.state, now))
        elif r.topic == TIMERS and isinstance(msg, DeadlineTick) and kind == "settlement" \
                and key == msg.join_key:
            order = self.order(key, where)
            self._step(key, order, join.on_tick(order.state, now, self.policy))

    def _first(self, msg: object, kind: str, sender: str) -> FirstRequest | None:
        if isinstance(msg, FirstRequest) and kind == "shop":
            return msg if sender == msg.shop_id else None  # R5: the shop speaks for itself
        if isinstance(msg, AssignedFirst) and kind == "settlement":
            try:
                original = envelope.open_record(msg.original, self.registry)
            except KessaiError:
                return None
            first = original.message
            if not isinstance(first, FirstRequest) or original.envelope.sender != first.shop_id:
                return None
            return FirstRequest(**{**first.__dict__, "order_id": msg.order_id})
        return None

    def _step(self, key: str, order: Order, step: join.Step) -> None:
        order.state = step.state
        if step.state is not None and step.state.outcome is not None and order.outcome is None:
            order.outcome = step.state.outcome
        for effect in step.effects:
            if isinstance(effect, join.SendResult) and step.state is not None:
                order.shadow[(RESULTS, effect.recipient, step.state.outcome or "")] += 1
            elif isinstance(effect, join.Authorize):
                order.shadow[(AUTHORIZATIONS, "issuer", "")] += 1

    def report(self, report: Report, began: Callable[[int], bool] = lambda _: True) -> None:
        """Outcome per order recomputed and compared; one terminal outcome; one charge — for
        the orders whose first record satisfies ``began`` (its timestamp in the range)."""
        for key, order in sorted(self.orders.items()):
            if order.first_seen is None or not began(order.first_seen.timestamp_ms):
                continue
            outcomes = list(dict.fromkeys(o for o, _ in order.results))
            if len(outcomes) > 1:
                w = next(w for o, w in order.results if o == outcomes[1])
                report.add("outcomes", w.topic, w.partition, w.offset,
                           f"order {key} has more than one terminal outcome: "
                           f"{', '.join(outcomes)}")
            if order.outcome is not None:
                report.orders += 1
                for outcome, w in order.results:
                    if outcome != order.outcome:
                        report.add("decision", w.topic, w.partition, w.offset,
                                   f"order {key}: recorded {outcome}, recomputed "
                                   f"{order.outcome} from the recorded requests and answers")
                        break
                if not order.results:
                    w = order.first_seen
                    assert w is not None
                    report.add("decision", w.topic, w.partition, w.offset,
                               f"order {key}: the recorded inputs settle it as "
                               f"{order.outcome}, but no result was recorded")
            elif order.results:
                outcome, w = order.results[0]
                status = order.state.status if order.state is not None else "unknown"
                report.add("decision", w.topic, w.partition, w.offset,
                           f"order {key}: recorded {outcome}, but the recorded inputs leave "
                           f"it {status} (a request, FI answer or deadline tick is missing "
                           "or not valid)")
            if len(order.charges) > 1:
                w = list(order.charges.values())[1]
                report.add("charges", w.topic, w.partition, w.offset,
                           f"order {key} approved (charged) {len(order.charges)} times: "
                           f"auth codes {', '.join(sorted(order.charges))}")
