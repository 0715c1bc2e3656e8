"""Recomputing the multi-wallet selector's routing (seed 004, claims 1–6, R-X3; issue 10).

The recorded wake-ups, pre-selections, published brand info, server wallets' answers, the
user's replies and the deadline ticks go, in recorded order and at their recorded times,
through the selector's own decisions (:func:`agents.selector.routing.decide`,
:func:`~agents.selector.routing.on_reply`) with each client's configuration from the
selector's key file. Every routing event the selector recorded on
``kessai.selector.routing-events`` (mode, candidates, chosen module, reason) must be the one
the recomputation makes, in the same order, for the same wake-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.selector import routing
from agents.selector.routing import Ask, ClientConfig, Decision, Deliver, Query, Unroutable
from audit.decisions import Finding, Where, usable
from kessai.authenticators import join_key
from kessai.handlers import actor_kind
from kessai.replay import ReplayRecord
from schemas.selector import (
    BrandAnswer,
    BrandInfo,
    Preselection,
    PromptReply,
    RoutingEvent,
    SelectorTick,
)
from schemas.v1 import PaymentRequest

# The selector's topics (agents/selector/agent.py).
WAKEUPS = "kessai.wakeups.selector"
PRESELECTIONS = "kessai.selector.preselections"
BRAND_INFO = "kessai.wallet.brand-info"
BRAND_ANSWERS = "kessai.wallet.brand-answers"
REPLIES = "kessai.selector.replies"
TIMERS = "kessai.selector.timers"
ROUTING_EVENTS = "kessai.selector.routing-events"
TOPICS = (WAKEUPS, PRESELECTIONS, BRAND_INFO, BRAND_ANSWERS, REPLIES, TIMERS, ROUTING_EVENTS)

Event = tuple[str, tuple[str, ...], str, str]  # mode, candidates, chosen, reason


@dataclass
class Wakeup:
    began: Where
    client: str
    mode: str
    wanted: list[str]
    stage: str = "querying"
    candidates: list[str] = field(default_factory=list)
    answers: dict[str, list[str]] = field(default_factory=dict)
    deadline_ms: int = 0
    shadow: list[Event] = field(default_factory=list)
    recorded: list[tuple[Event, Where]] = field(default_factory=list)


class SelectorAudit:
    name = "selector"
    topics = TOPICS

    def __init__(self, clients: Mapping[str, ClientConfig]) -> None:
        self.clients = dict(clients)
        self.preselected: dict[str, str] = {}
        self.published: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self.wakeups: dict[tuple[str, str], Wakeup] = {}
        # Recorded routing events, matched to wake-ups at the end (one millisecond may archive
        # an event before its wake-up).
        self.events: list[tuple[str, str, Event, Where]] = []
        self.decisions = 0
        self._seen: set[str] = set()

    @classmethod
    def from_secrets(cls, cfg: Mapping[str, Any]) -> SelectorAudit:
        return cls({c: ClientConfig.parse(c, conf)
                    for c, conf in (cfg.get("clients") or {}).items()})

    def feed(self, r: ReplayRecord) -> None:
        if r.topic not in TOPICS or not usable(r):
            return
        msg, kind, now = r.message, actor_kind(r.sender or ""), r.timestamp_ms
        if r.topic == ROUTING_EVENTS:
            if isinstance(msg, RoutingEvent) and r.sender == "selector" \
                    and msg.decided_by == "selector":
                event = (msg.mode, tuple(msg.candidates), msg.chosen, msg.reason)
                self.events.append((msg.client_id, msg.wakeup_id, event, Where.of(r)))
            return
        if r.message_id in self._seen:
            return
        self._seen.add(r.message_id or "")
        if r.topic == WAKEUPS and isinstance(msg, PaymentRequest) and kind == "shop" \
                and r.sender == msg.shop_id:
            self._wakeup(msg, r, now)
        elif r.topic == PRESELECTIONS and isinstance(msg, Preselection) \
                and kind in ("operator", "selector"):
            cfg = self.clients.get(msg.client_id)
            if cfg is not None and msg.module_id in cfg.modules:
                self.preselected[msg.client_id] = msg.module_id
        elif r.topic == BRAND_INFO and isinstance(msg, BrandInfo) and kind == "wum" \
                and r.sender == msg.module_id:
            cfg = self.clients.get(msg.client_id)
            before = self.published.get((msg.client_id, msg.module_id))
            if cfg is not None and cfg.modules.get(msg.module_id) == msg.server_id \
                    and (before is None or before[0] <= msg.version):
                self.published[(msg.client_id, msg.module_id)] = (msg.version,
                                                                  list(msg.brands))
        elif r.topic == BRAND_ANSWERS and isinstance(msg, BrandAnswer) and kind == "wallet" \
                and r.sender == msg.server_id:
            w = self.wakeups.get((msg.client_id, msg.wakeup_id))
            cfg = self.clients.get(msg.client_id)
            if w is None or cfg is None or w.stage != "querying" \
                    or msg.server_id not in w.candidates:
                return
            w.answers[msg.server_id] = list(msg.brands)
            if set(w.answers) >= set(w.candidates):
                self._carry_out(w, routing.decide(cfg, w.wanted, None, {}, w.answers), now)
        elif r.topic == REPLIES and isinstance(msg, PromptReply) \
                and kind in ("operator", "selector"):
            w = self.wakeups.get((msg.client_id, msg.wakeup_id))
            if w is None or w.stage != "asking":
                return
            if now >= w.deadline_ms:
                self._expire(w, now)
                return
            decision = routing.on_reply(w.candidates, msg.choice, msg.cancel)
            if decision is not None:
                self._carry_out(w, decision, now)
        elif r.topic == TIMERS and isinstance(msg, SelectorTick) and r.sender == "selector":
            for (client, _), w in list(self.wakeups.items()):
                if client == msg.client_id and w.stage != "done" and w.deadline_ms <= now:
                    self._expire(w, now)

    def _wakeup(self, request: PaymentRequest, r: ReplayRecord, now: int) -> None:
        client, wakeup_id = request.user_id, join_key(request.shop_id, request.order_id)
        if (client, wakeup_id) in self.wakeups:
            return  # seen already: not routed again
        cfg = self.clients.get(client)
        w = self.wakeups[(client, wakeup_id)] = Wakeup(Where.of(r), client,
                                                       cfg.mode if cfg else "",
                                                       list(request.brands))
        if cfg is None:
            self._carry_out(w, Unroutable([], routing.UNKNOWN_CLIENT), now)
            return
        published = {m: brands for (c, m), (_, brands) in self.published.items()
                     if c == client and m in cfg.modules}
        self._carry_out(w, routing.decide(cfg, request.brands, self.preselected.get(client),
                                          published, None), now)

    def _expire(self, w: Wakeup, now: int) -> None:
        cfg = self.clients.get(w.client)
        if w.stage == "querying" and cfg is not None:
            self._carry_out(w, routing.decide(cfg, w.wanted, None, {}, w.answers), now)
        elif w.stage == "asking":
            self._carry_out(w, Unroutable(w.candidates, routing.USER_TIMEOUT), now)

    def _carry_out(self, w: Wakeup, decision: Decision, now: int) -> None:
        cfg = self.clients.get(w.client)
        self.decisions += 1
        if isinstance(decision, Ask) and cfg is not None:
            w.stage, w.candidates = "asking", list(decision.candidates)
            w.deadline_ms = now + cfg.prompt_timeout_ms
            event: Event = (w.mode, tuple(decision.candidates), "",
                            f"asked the user: {decision.reason}")
        elif isinstance(decision, Query) and cfg is not None:
            w.stage, w.candidates = "querying", list(decision.servers)
            w.deadline_ms = now + cfg.query_timeout_ms
            event = (w.mode, tuple(decision.servers), "",
                     "asked the server wallets for their brand info")
        elif isinstance(decision, Deliver):
            w.stage = "done"
            event = (w.mode, tuple(decision.candidates), decision.module, decision.reason)
        else:
            w.stage = "done"
            reason = decision.reason if isinstance(decision, Unroutable) else "NO_CONFIG"
            candidates = decision.candidates if isinstance(decision, Unroutable) else []
            event = (w.mode, tuple(candidates), "", reason)
        w.shadow.append(event)

    def findings(self) -> list[Finding]:
        out = []
        for client, wid, event, where in self.events:
            w = self.wakeups.get((client, wid))
            if w is None:
                out.append(Finding(where, where.timestamp_ms, f"wake-up {wid}: a routing "
                                   f"event ({_fmt(event)}) for no recorded wake-up"))
            else:
                w.recorded.append((event, where))
        self.events = []
        for (_, wid), w in self.wakeups.items():
            for i in range(max(len(w.shadow), len(w.recorded))):
                mine = w.shadow[i] if i < len(w.shadow) else None
                theirs, where = w.recorded[i] if i < len(w.recorded) else (None, w.began)
                if mine != theirs:
                    out.append(Finding(where, w.began.timestamp_ms,
                                       f"wake-up {wid}: recorded "
                                       f"{_fmt(theirs) if theirs else 'no routing event'}, "
                                       f"recomputed {_fmt(mine) if mine else 'none'}"))
                    break
        return out


def _fmt(e: Event) -> str:
    mode, candidates, chosen, reason = e
    target = f"→ {chosen}" if chosen else "no module"
    return f"{mode} [{', '.join(candidates)}] {target} ({reason})"
