"""The multi-wallet selector (seed 004, JP 2000-026330, claims 1–6, Ex 1–5): the user PC's
selector 40–44, which passes each wake-up message, unchanged, to exactly one wallet
connection module ("受け渡す", [0029]).

Per client, top to bottom:

0. A client's purchase (``kessai.selector.commands``) → its order request, as the selector, so
   the shop's wake-up comes back on the selector's own wake-up topic (issue 8 item 3).
1. M4 the shop's wake-up arrives on ``kessai.wakeups.selector`` (keyed by client). Its id is
   its join key; a wake-up id already in the state is not routed again (redelivery after a
   crash, a shop's re-sent M4): exactly one delivery per wake-up id.
2. :func:`agents.selector.routing.decide` in the client's mode: deliver, ask the user (a
   prompt on ``kessai.selector.prompts``, the wake-up held in the state until the reply or the
   deadline), ask the server wallets (``kessai.wallet.brand-queries``, held until every answer
   or the deadline; partial answers decide), or unroutable (``kessai.wakeups.unroutable``).
3. Delivery: a ``HandedWakeup`` holding the shop's signed envelope byte for byte on
   ``kessai.wum.wakeups``; every decision is a ``RoutingEvent`` on
   ``kessai.selector.routing-events``.

All state (stored pre-selections, module brand info, pending and routed wake-ups) lives in
the changelog-backed ``selector-state`` table, keyed under the client, on the partition of the
client's records: every selector topic is keyed by client and co-partitioned. Deadlines fire
without traffic: a timer scans the partitions this worker actively owns and sends a
``SelectorTick`` through ``kessai.selector.timers``, so each change happens inside an event.

Bad input never stops the selector: an unknown client's wake-up is unroutable with its reason;
a pre-selection of a module the client does not have, a brand-info record from a module not
paired with the server it names (forged), a reply for an unknown or settled wake-up or naming a
module that was not offered, are audited and ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
from aiokafka.partitioner import murmur2

from agents.selector import console, routing
from agents.selector.routing import Ask, ClientConfig, Decision, Deliver, Query, Unroutable
from kessai.authenticators import join_key
from kessai.runtime import AgentContext, Inbound
from protocols.user import delivery_for
from schemas.selector import (
    BrandAnswer,
    BrandInfo,
    BrandQuery,
    HandedWakeup,
    Preselection,
    Prompt,
    PromptReply,
    RoutingEvent,
    SelectorTick,
    UnroutableWakeup,
)
from schemas.v1 import OrderRequest, PaymentRequest, PurchaseCommand
from topics.catalogue import CLIENT_PARTITIONS

log = logging.getLogger("kessai.selector")

ACTORS: list[str] = ["selector"]
ME = "selector"

COMMANDS = "kessai.selector.commands"
ORDER_REQUESTS = "kessai.order-requests"
WAKEUPS = "kessai.wakeups.selector"
PRESELECTIONS = "kessai.selector.preselections"
BRAND_INFO = "kessai.wallet.brand-info"
BRAND_QUERIES = "kessai.wallet.brand-queries"
BRAND_ANSWERS = "kessai.wallet.brand-answers"
PROMPTS = "kessai.selector.prompts"
REPLIES = "kessai.selector.replies"
TIMERS = "kessai.selector.timers"
MODULE_WAKEUPS = "kessai.wum.wakeups"
ROUTING_EVENTS = "kessai.selector.routing-events"
UNROUTABLE = "kessai.wakeups.unroutable"

TABLE = "selector-state"
TICK_RETRY_MS = 2_000

ASKING, QUERYING, DONE = "asking", "querying", "done"


def partition_of(client_id: str, partitions: int = CLIENT_PARTITIONS) -> int:
    """The partition the default (murmur2) partitioner gives a client key."""
    return (murmur2(client_id.encode()) & 0x7FFFFFFF) % partitions


def _k(*parts: str) -> bytes:
    return "\x1f".join(parts).encode()


def _pack(value: Mapping[str, Any]) -> bytes:
    return msgpack.packb(dict(value), use_bin_type=True)


def _unpack(raw: bytes | None) -> dict[str, Any] | None:
    return msgpack.unpackb(raw, raw=False) if raw else None


@dataclass
class Selector:
    ctx: AgentContext
    clients: dict[str, ClientConfig]
    table: MutableMapping[bytes, bytes] = field(default_factory=dict)
    tick_sent: dict[str, int] = field(default_factory=dict)
    page: console.Console | None = None  # the user's prompts, in a browser

    # -- state -------------------------------------------------------------------------------
    def pending(self, client: str, wakeup_id: str) -> dict[str, Any] | None:
        return _unpack(self.table.get(_k("w", client, wakeup_id)))

    def _save(self, client: str, wakeup_id: str, state: Mapping[str, Any]) -> None:
        self.table[_k("w", client, wakeup_id)] = _pack(state)

    def preselected(self, client: str) -> str | None:
        raw = self.table.get(_k("p", client))
        return raw.decode() if raw else None

    def published(self, cfg: ClientConfig) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for module in cfg.modules:
            rec = _unpack(self.table.get(_k("b", cfg.client_id, module)))
            if rec is not None:
                out[module] = list(rec["brands"])
        return out

    # 0. A client's purchase: the order request, so the wake-up comes back to the selector.
    async def on_command(self, inbound: Inbound) -> None:
        cmd: PurchaseCommand = inbound.message
        if cmd.user_id not in self.clients:
            await self.ctx.audit("unknown-client", f"session:{cmd.session}",
                                 f"no selector client {cmd.user_id!r}", sender=ME)
            return
        await self.ctx.emit(ORDER_REQUESTS, OrderRequest(
            session=cmd.session, user_id=cmd.user_id, shop_id=cmd.shop_id, items=cmd.items,
            delivery=delivery_for(cmd.user_id), scenario=cmd.scenario), cmd.session, sender=ME)

    # 1. M4: the wake-up.
    async def on_wakeup(self, inbound: Inbound) -> None:
        request: PaymentRequest = inbound.message
        client, wakeup_id = request.user_id, join_key(request.shop_id, request.order_id)
        if self.pending(client, wakeup_id) is not None:
            log.info("selector: wake-up %s for %s seen already; not routed again", wakeup_id,
                     client)
            return
        cfg = self.clients.get(client)
        state = {"stage": QUERYING, "mode": cfg.mode if cfg else "", "wanted": request.brands,
                 "original": inbound.raw, "candidates": [], "answers": {}, "deadline_ms": 0}
        if cfg is None:
            await self._carry_out(client, wakeup_id, state,
                                  Unroutable([], routing.UNKNOWN_CLIENT))
            return
        decision = routing.decide(cfg, request.brands, self.preselected(client),
                                  self.published(cfg), None)
        await self._carry_out(client, wakeup_id, state, decision)

    # 2. Carry a decision out: the state first, then the records it leads to.
    async def _carry_out(self, client: str, wakeup_id: str, state: dict[str, Any],
                         decision: Decision) -> None:
        cfg = self.clients.get(client)
        now = self.ctx.clock.now_ms()
        if isinstance(decision, Ask) and cfg is not None:
            state.update(stage=ASKING, candidates=decision.candidates,
                         deadline_ms=now + cfg.prompt_timeout_ms)
            self._save(client, wakeup_id, state)
            await self.ctx.emit(PROMPTS, Prompt(wakeup_id, client, "module", decision.candidates,
                                                state["deadline_ms"]), wakeup_id, key=client,
                                sender=ME)
            await self._event(wakeup_id, client, state["mode"], decision.candidates, "",
                              f"asked the user: {decision.reason}")
        elif isinstance(decision, Query) and cfg is not None:
            state.update(stage=QUERYING, candidates=decision.servers,
                         deadline_ms=now + cfg.query_timeout_ms)
            self._save(client, wakeup_id, state)
            for server in decision.servers:
                await self.ctx.emit(BRAND_QUERIES, BrandQuery(wakeup_id, client, server),
                                    wakeup_id, key=client, sender=ME)
            await self._event(wakeup_id, client, state["mode"], decision.servers, "",
                              "asked the server wallets for their brand info")
        elif isinstance(decision, Deliver):
            state.update(stage=DONE, chosen=decision.module, reason=decision.reason)
            self._save(client, wakeup_id, state)
            await self.ctx.emit(MODULE_WAKEUPS, HandedWakeup(
                wakeup_id, client, decision.module, state["mode"], state["original"]),
                wakeup_id, key=client, sender=ME)
            await self._event(wakeup_id, client, state["mode"], decision.candidates,
                              decision.module, decision.reason)
            log.info("selector: wake-up %s for %s → %s (%s)", wakeup_id, client,
                     decision.module, decision.reason)
        else:
            reason = decision.reason if isinstance(decision, Unroutable) else "NO_CONFIG"
            candidates = decision.candidates if isinstance(decision, Unroutable) else []
            state.update(stage=DONE, chosen="", reason=reason)
            self._save(client, wakeup_id, state)
            await self.ctx.emit(UNROUTABLE, UnroutableWakeup(
                wakeup_id, client, state["mode"], reason, state["original"]),
                wakeup_id, key=client, sender=ME)
            await self._event(wakeup_id, client, state["mode"], candidates, "", reason)
            log.info("selector: wake-up %s for %s is unroutable: %s", wakeup_id, client, reason)

    async def _event(self, wakeup_id: str, client: str, mode: str, candidates: list[str],
                     chosen: str, reason: str) -> None:
        await self.ctx.emit(ROUTING_EVENTS, RoutingEvent(wakeup_id, client, mode, candidates,
                                                         chosen, reason), wakeup_id,
                            key=client, sender=ME)

    # Ex 1: the stored pre-selection (latest wins; only a module the client has).
    async def on_preselection(self, inbound: Inbound) -> None:
        pre: Preselection = inbound.message
        cfg = self.clients.get(pre.client_id)
        if cfg is None or pre.module_id not in cfg.modules:
            await self.ctx.audit("unknown-module", f"client:{pre.client_id}",
                                 f"pre-selection of {pre.module_id!r} ignored: not a module "
                                 "of this client", sender=ME)
            return
        self.table[_k("p", pre.client_id)] = pre.module_id.encode()

    # Ex 4: brand info a module published; only from a module paired with the server it names.
    async def on_brand_info(self, inbound: Inbound) -> None:
        info: BrandInfo = inbound.message
        cfg = self.clients.get(info.client_id)
        if cfg is None or cfg.modules.get(info.module_id) != info.server_id:
            await self.ctx.audit("forged-brand-info", f"client:{info.client_id}",
                                 f"brand info from {inbound.sender} for server "
                                 f"{info.server_id!r} ignored: no such pairing", sender=ME)
            return
        key = _k("b", info.client_id, info.module_id)
        before = _unpack(self.table.get(key))
        if before is not None and int(before.get("version", 0)) > info.version:
            return  # an older record (a redelivery): the newer one stays
        self.table[key] = _pack({"brands": list(info.brands), "version": info.version})

    # Ex 5: a server wallet's live answer.
    async def on_brand_answer(self, inbound: Inbound) -> None:
        answer: BrandAnswer = inbound.message
        state = self.pending(answer.client_id, answer.wakeup_id)
        cfg = self.clients.get(answer.client_id)
        if state is None or cfg is None or state["stage"] != QUERYING \
                or answer.server_id not in state["candidates"]:
            await self.ctx.audit("unexpected-brand-answer", answer.wakeup_id,
                                 f"answer from {answer.server_id} for no open question",
                                 sender=ME)
            return
        state["answers"][answer.server_id] = list(answer.brands)
        if set(state["answers"]) >= set(state["candidates"]):
            await self._decide_live(cfg, answer.wakeup_id, state)
        else:
            self._save(answer.client_id, answer.wakeup_id, state)

    async def _decide_live(self, cfg: ClientConfig, wakeup_id: str,
                           state: dict[str, Any]) -> None:
        decision = routing.decide(cfg, state["wanted"], None, {}, state["answers"])
        await self._carry_out(cfg.client_id, wakeup_id, state, decision)

    # Ex 2 (and several matches): the user's reply.
    async def on_reply(self, inbound: Inbound) -> None:
        reply: PromptReply = inbound.message
        state = self.pending(reply.client_id, reply.wakeup_id)
        if state is None or state["stage"] != ASKING:
            await self.ctx.audit("unknown-reply", reply.wakeup_id,
                                 f"reply for {'no' if state is None else 'a settled'} "
                                 "wake-up ignored", sender=ME)
            return
        if self.ctx.clock.now_ms() >= state["deadline_ms"]:
            await self._expire(reply.client_id, reply.wakeup_id, state)
            await self.ctx.audit("expired-reply", reply.wakeup_id,
                                 "reply after the prompt's deadline ignored", sender=ME)
            return
        decision = routing.on_reply(state["candidates"], reply.choice, reply.cancel)
        if decision is None:
            await self.ctx.audit("not-offered", reply.wakeup_id,
                                 f"reply names {reply.choice!r}, which was not offered",
                                 sender=ME)
            await self.ctx.emit(PROMPTS, Prompt(reply.wakeup_id, reply.client_id, "module",
                                                state["candidates"], state["deadline_ms"]),
                                reply.wakeup_id, key=reply.client_id, sender=ME)  # ask again
            return
        await self._carry_out(reply.client_id, reply.wakeup_id, state, decision)

    # Deadlines: the user's prompt, the server wallets' answers.
    async def _expire(self, client: str, wakeup_id: str, state: dict[str, Any]) -> None:
        cfg = self.clients.get(client)
        if state["stage"] == QUERYING and cfg is not None:
            await self._decide_live(cfg, wakeup_id, state)  # partial answers decide
        elif state["stage"] == ASKING:
            await self._carry_out(client, wakeup_id, state,
                                  Unroutable(state["candidates"], routing.USER_TIMEOUT))

    async def on_tick(self, inbound: Inbound) -> None:
        tick: SelectorTick = inbound.message
        self.tick_sent.pop(tick.client_id, None)
        now = self.ctx.clock.now_ms()
        prefix = _k("w", tick.client_id, "")
        for key in [k for k in list(self.table) if k.startswith(prefix)]:
            state = _unpack(self.table.get(key))
            if state and state["stage"] != DONE and state["deadline_ms"] <= now:
                await self._expire(tick.client_id, key[len(prefix):].decode(), state)

    async def scan(self) -> None:
        """A tick for every client with a due deadline, on the partitions this worker owns."""
        now = self.ctx.clock.now_ms()
        owned = self.ctx.active_partitions(TIMERS)
        due: set[str] = set()
        for key, raw in list(self.table.items()):
            if not key.startswith(b"w\x1f"):
                continue
            state = _unpack(raw)
            if state and state["stage"] != DONE and state["deadline_ms"] <= now:
                due.add(key.split(b"\x1f")[1].decode())
        for client in sorted(due):
            if partition_of(client) not in owned or now - self.tick_sent.get(client, 0) \
                    < TICK_RETRY_MS:
                continue
            self.tick_sent[client] = now
            await self.ctx.emit(TIMERS, SelectorTick(client, now), f"client:{client}",
                                key=client, sender=ME)


def load_clients(ctx: AgentContext) -> dict[str, ClientConfig]:
    """Every client of the selector's key file, validated (a bad one stops the worker)."""
    raw: Mapping[str, Any] = ctx.actor_keys(ME).secrets.get("clients", {})
    return {c: ClientConfig.parse(c, conf) for c, conf in raw.items()}


def register(ctx: AgentContext, clients: Mapping[str, ClientConfig] | None = None, *,
             serve_console: bool | None = None) -> Selector:
    """Declare the selector's handlers, its state table, its deadline timer and the user's
    console (served by the worker; not by default when ``clients`` replaces the key file's
    configuration, as tests and the demo do)."""
    selector = Selector(ctx, dict(clients) if clients is not None else load_clients(ctx),
                        ctx.table(TABLE, partitions=CLIENT_PARTITIONS))
    # The page also shows the prompts of users whose master server wallet asks them (Ex 9,
    # 10, 12) and who have no selector of their own: the key file's ``page_clients``.
    page_clients = ctx.actor_keys(ME).secrets.get("page_clients", []) if clients is None \
        else []
    selector.page = console.register(
        ctx, frozenset(selector.clients) | frozenset(page_clients),
        serve=clients is None if serve_console is None else serve_console)
    ctx.handle(COMMANDS, selector.on_command, types=(PurchaseCommand,), senders=("operator",))
    ctx.handle(WAKEUPS, selector.on_wakeup, types=(PaymentRequest,), senders=("shop",),
               sender_is="shop_id")
    ctx.handle(PRESELECTIONS, selector.on_preselection, types=(Preselection,),
               senders=("operator", "selector"))
    ctx.handle(BRAND_INFO, selector.on_brand_info, types=(BrandInfo,), senders=("wum",),
               sender_is="module_id")
    ctx.handle(BRAND_ANSWERS, selector.on_brand_answer, types=(BrandAnswer,),
               senders=("wallet",), sender_is="server_id")
    ctx.handle(REPLIES, selector.on_reply, types=(PromptReply,),
               senders=("operator", "selector"))
    ctx.handle(TIMERS, selector.on_tick, types=(SelectorTick,), senders=("selector",))

    @ctx.every(ctx.settings.timer_interval_s)
    async def selector_deadlines() -> None:
        try:
            await selector.scan()
        except Exception:
            log.exception("selector: the deadline scan failed; the next tick retries")

    return selector
