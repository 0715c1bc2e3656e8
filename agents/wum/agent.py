"""Wallet connection modules (seed 004 WUM 50a/50b, 51a/51b, 70, 21–23): the client-side
half of a server wallet. One worker hosts every module of the key set (``KIND = "wum"``).

Each module is paired with exactly one server wallet (claim 1, [0024]); a configuration that
binds two modules of a client to one server, or one module to two (except the common module
of Ex 6, ``multi``), is refused at start-up. Top to bottom:

1. Ex 4 (claim 5): at start every module that carries brand info publishes it
   (``kessai.wallet.brand-info``, compacted); a redeployed module publishes its new info.
2. M4 handed over by the selector (``kessai.wum.wakeups``): the module checks the shop's
   signed wake-up inside, then asks its paired server wallet — and no other — to settle it
   (``kessai.wallet.sessions``), passing the selector's signed hand-over, so the server
   settles only a wake-up the selector handed to this module (claims 2–6, R-C3, R-C5).
3. A client without a selector (``kessai.wakeups.wum``):
   - Ex 6 (claim 7): the common module asks each of its server wallets for its brand info
     (``kessai.wallet.brand-queries``), picks the one that settles the wake-up's brand
     (partial answers decide at the deadline), and settles with it;
   - Ex 7–12: a conventional module sends the wake-up to its (master) server wallet, with the
     slave brand info (63b, Ex 11) or slave info (64b, Ex 12) it carries, if any.
4. The server wallet's ``WalletSettled`` comes back: the settlement the wake-up led to.

A module settles a wake-up once (its id in the ``wum-state`` table).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
from aiokafka.partitioner import murmur2

from kessai import envelope
from kessai.authenticators import join_key
from kessai.errors import ConfigError, KessaiError
from kessai.runtime import AgentContext, Inbound
from protocols.multiwallet import check_pairing, match_brand
from schemas.selector import (
    BrandAnswer,
    BrandInfo,
    BrandQuery,
    HandedWakeup,
    ModuleSettle,
    RoutingEvent,
    SelectorTick,
    UnroutableWakeup,
    WalletSettled,
)
from schemas.v1 import PaymentRequest
from topics.catalogue import CLIENT_PARTITIONS

log = logging.getLogger("kessai.wum")

KIND = "wum"

HANDED = "kessai.wum.wakeups"
DIRECT = "kessai.wakeups.wum"
BRAND_INFO = "kessai.wallet.brand-info"
BRAND_QUERIES = "kessai.wallet.brand-queries"
BRAND_ANSWERS = "kessai.wum.brand-answers"
SESSIONS = "kessai.wallet.sessions"
SETTLED = "kessai.wallet.settled"
TIMERS = "kessai.wum.timers"
ROUTING_EVENTS = "kessai.selector.routing-events"
UNROUTABLE = "kessai.wakeups.unroutable"

TABLE = "wum-state"
NO_SERVER_FOR_BRAND = "NO_SERVER_FOR_BRAND"
UNKNOWN_CLIENT = "UNKNOWN_CLIENT"
DEFAULT_QUERY_TIMEOUT_MS = 5_000  # [IMPL] Ex 6: how long the common module waits for answers


@dataclass(frozen=True)
class ModuleConfig:
    """A module as its key file describes it."""

    module_id: str
    client_id: str
    servers: list[str]
    brands: list[str] = field(default_factory=list)  # Ex 4
    multi: bool = False  # Ex 6
    direct: bool = False  # takes the client's wake-ups itself (no selector)
    version: int = 1  # Ex 4: bumped by a redeploy
    slave_brands: dict[str, list[str]] = field(default_factory=dict)  # 63b (Ex 11)
    slave_info: list[str] = field(default_factory=list)  # 64b (Ex 12)
    query_timeout_ms: int = DEFAULT_QUERY_TIMEOUT_MS

    @classmethod
    def parse(cls, module_id: str, raw: Mapping[str, Any]) -> ModuleConfig:
        return cls(module_id, str(raw["client"]), list(raw["servers"]),
                   list(raw.get("brands", [])), bool(raw.get("multi", False)),
                   bool(raw.get("direct", raw.get("multi", False))),
                   int(raw.get("version", 1)),
                   {k: list(v) for k, v in (raw.get("slave_brands") or {}).items()},
                   list(raw.get("slave_info", [])),
                   int(raw.get("query_timeout_ms", DEFAULT_QUERY_TIMEOUT_MS)))


def check_modules(modules: Mapping[str, ModuleConfig]) -> None:
    """Refuse modules not paired one to one with server wallets, per client, and a client
    with two modules that each take its wake-ups directly.

    Raises:
        ConfigError: what is wrong, naming the modules.
    """
    by_client: dict[str, dict[str, list[str]]] = {}
    multi: list[str] = []
    direct: dict[str, str] = {}
    for m in modules.values():
        by_client.setdefault(m.client_id, {})[m.module_id] = m.servers
        if m.multi:
            multi.append(m.module_id)
        if m.direct:
            if m.client_id in direct:
                raise ConfigError(f"client {m.client_id} has two direct modules "
                                  f"({direct[m.client_id]}, {m.module_id})")
            direct[m.client_id] = m.module_id
    for pairs in by_client.values():
        check_pairing(pairs, multi=multi)


def partition_of(client_id: str) -> int:
    return (murmur2(client_id.encode()) & 0x7FFFFFFF) % CLIENT_PARTITIONS


def open_wakeup(raw: bytes, ctx: AgentContext) -> PaymentRequest:
    """The shop's signed wake-up inside ``raw``, verified.

    Raises:
        KessaiError: not a verifiable wake-up signed by the shop it names.
    """
    opened = envelope.open_record(raw, ctx.registry)
    request = opened.message
    if not isinstance(request, PaymentRequest) or opened.envelope.sender != request.shop_id:
        raise KessaiError("not a shop's wake-up")
    return request


@dataclass
class Modules:
    ctx: AgentContext
    modules: dict[str, ModuleConfig]
    table: MutableMapping[bytes, bytes] = field(default_factory=dict)
    tick_sent: dict[str, int] = field(default_factory=dict)

    def _seen(self, module: str, wakeup_id: str) -> bool:
        return f"s\x1f{module}\x1f{wakeup_id}".encode() in self.table

    def _mark(self, module: str, wakeup_id: str) -> None:
        self.table[f"s\x1f{module}\x1f{wakeup_id}".encode()] = b"1"

    def direct_module(self, client: str) -> ModuleConfig | None:
        return next((m for m in self.modules.values() if m.client_id == client and m.direct),
                    None)

    # 1. Ex 4: publish the brand info each module carries.
    async def publish(self) -> None:
        for m in self.modules.values():
            if m.brands and not m.multi:
                await self.ctx.emit(BRAND_INFO, BrandInfo(m.client_id, m.module_id, m.servers[0],
                                                          m.brands, m.version),
                                    f"{m.client_id}/{m.module_id}", key=m.client_id,
                                    sender=m.module_id)

    # 2. M4 handed over by the selector → the paired server wallet.
    async def on_handed(self, inbound: Inbound) -> None:
        handed: HandedWakeup = inbound.message
        m = self.modules.get(handed.module_id)
        if m is None or m.client_id != handed.client_id:
            await self.ctx.audit("unknown-module", handed.wakeup_id,
                                 f"wake-up handed to {handed.module_id!r}, not a module of "
                                 f"client {handed.client_id!r} here",
                                 sender=next(iter(self.ctx.keys)))
            return
        try:
            request = open_wakeup(handed.original, self.ctx)
        except KessaiError as exc:
            await self.ctx.audit("bad-handover", handed.wakeup_id, str(exc), sender=m.module_id)
            return
        if request.user_id != m.client_id or \
                join_key(request.shop_id, request.order_id) != handed.wakeup_id:
            await self.ctx.audit("bad-handover", handed.wakeup_id,
                                 "the wake-up inside is not this client's", sender=m.module_id)
            return
        if self._seen(m.module_id, handed.wakeup_id):
            return
        self._mark(m.module_id, handed.wakeup_id)
        await self._settle(m, m.servers[0], handed.wakeup_id, inbound.raw)

    async def _settle(self, m: ModuleConfig, server: str, wakeup_id: str, handed: bytes) -> None:
        await self.ctx.emit(SESSIONS, ModuleSettle(
            wakeup_id, m.client_id, m.module_id, server, handed,
            slave_brands=m.slave_brands, slave_info=m.slave_info),
            wakeup_id, key=m.client_id, sender=m.module_id)
        log.info("module %s: wake-up %s → server wallet %s", m.module_id, wakeup_id, server)

    # 3. A wake-up for a client without a selector.
    async def on_direct(self, inbound: Inbound) -> None:
        request: PaymentRequest = inbound.message
        client, wakeup_id = request.user_id, join_key(request.shop_id, request.order_id)
        m = self.direct_module(client)
        if m is None:  # once per wake-up id, a redelivery included (R-X1), and audited (R-X3)
            seen = f"u\x1f{client}\x1f{wakeup_id}".encode()
            if seen in self.table:
                return
            self.table[seen] = b"1"
            sender = next(iter(self.ctx.keys))
            await self.ctx.emit(UNROUTABLE, UnroutableWakeup(
                wakeup_id, client, "direct", UNKNOWN_CLIENT, inbound.raw), wakeup_id,
                key=client, sender=sender)
            await self.ctx.emit(ROUTING_EVENTS, RoutingEvent(
                wakeup_id, client, "direct", [], "", UNKNOWN_CLIENT, decided_by=sender),
                wakeup_id, key=client, sender=sender)
            return
        if self._seen(m.module_id, wakeup_id) or self._state(client, wakeup_id) is not None:
            return
        if not m.multi:  # Ex 7–12: the conventional module → its (master) server wallet
            self._mark(m.module_id, wakeup_id)
            await self._settle(m, m.servers[0], wakeup_id, inbound.raw)
            return
        # Ex 6: ask every server wallet of the common module.
        self._save(client, wakeup_id, {"module": m.module_id, "wanted": request.brands,
                                       "raw": inbound.raw, "answers": {},
                                       "deadline_ms": self.ctx.clock.now_ms()
                                       + m.query_timeout_ms})
        for server in m.servers:
            await self.ctx.emit(BRAND_QUERIES, BrandQuery(wakeup_id, client, server), wakeup_id,
                                key=client, sender=m.module_id)

    def _state(self, client: str, wakeup_id: str) -> dict[str, Any] | None:
        raw = self.table.get(f"q\x1f{client}\x1f{wakeup_id}".encode())
        return msgpack.unpackb(raw, raw=False) if raw else None

    def _save(self, client: str, wakeup_id: str, state: Mapping[str, Any]) -> None:
        self.table[f"q\x1f{client}\x1f{wakeup_id}".encode()] = msgpack.packb(
            dict(state), use_bin_type=True)

    async def on_brand_answer(self, inbound: Inbound) -> None:
        answer: BrandAnswer = inbound.message
        state = self._state(answer.client_id, answer.wakeup_id)
        m = self.modules.get(state["module"]) if state else None
        if state is None or m is None or state.get("done") or answer.server_id not in m.servers:
            return  # late, or for no open question of these modules
        state["answers"][answer.server_id] = list(answer.brands)
        if set(state["answers"]) >= set(m.servers):
            await self._choose(m, answer.wakeup_id, state)
        else:
            self._save(answer.client_id, answer.wakeup_id, state)

    async def _choose(self, m: ModuleConfig, wakeup_id: str, state: dict[str, Any]) -> None:
        state["done"] = True
        self._save(m.client_id, wakeup_id, state)
        answers: dict[str, list[str]] = state["answers"]
        match = match_brand(state["wanted"], {s: answers.get(s, []) for s in m.servers})
        if match is None:
            await self.ctx.emit(UNROUTABLE, UnroutableWakeup(
                wakeup_id, m.client_id, "multi-module", NO_SERVER_FOR_BRAND, state["raw"]),
                wakeup_id, key=m.client_id, sender=m.module_id)
            await self._event(m, wakeup_id, list(answers), "", NO_SERVER_FOR_BRAND)
            return
        brand, able = match
        self._mark(m.module_id, wakeup_id)
        await self._event(m, wakeup_id, able, able[0],
                          f"brand {brand} (answered by {len(answers)} of {len(m.servers)})")
        await self._settle(m, able[0], wakeup_id, state["raw"])

    async def _event(self, m: ModuleConfig, wakeup_id: str, candidates: list[str], chosen: str,
                     reason: str) -> None:
        await self.ctx.emit(ROUTING_EVENTS, RoutingEvent(
            wakeup_id, m.client_id, "multi-module", candidates, chosen, reason,
            decided_by=m.module_id), wakeup_id, key=m.client_id, sender=m.module_id)

    async def on_tick(self, inbound: Inbound) -> None:
        tick: SelectorTick = inbound.message
        self.tick_sent.pop(tick.client_id, None)
        now = self.ctx.clock.now_ms()
        prefix = f"q\x1f{tick.client_id}\x1f".encode()
        for key in [k for k in list(self.table) if k.startswith(prefix)]:
            state = self._state(tick.client_id, key[len(prefix):].decode())
            m = self.modules.get(state["module"]) if state else None
            if state and m and not state.get("done") and state["deadline_ms"] <= now:
                await self._choose(m, key[len(prefix):].decode(), state)

    async def scan(self) -> None:
        now, owned = self.ctx.clock.now_ms(), self.ctx.active_partitions(TIMERS)
        due = set()
        for key, raw in list(self.table.items()):
            if key.startswith(b"q\x1f"):
                state = msgpack.unpackb(raw, raw=False)
                if not state.get("done") and state["deadline_ms"] <= now:
                    due.add(key.split(b"\x1f")[1].decode())
        for client in sorted(due):
            if partition_of(client) in owned and now - self.tick_sent.get(client, 0) >= 2_000:
                self.tick_sent[client] = now
                m = self.direct_module(client)
                if m is not None:
                    await self.ctx.emit(TIMERS, SelectorTick(client, now), f"client:{client}",
                                        key=client, sender=m.module_id)

    # 4. The settlement the wake-up led to.
    async def on_settled(self, inbound: Inbound) -> None:
        done: WalletSettled = inbound.message
        if done.module_id in self.modules:
            log.info("module %s: wake-up %s settled by %s via %s: %s", done.module_id,
                     done.wakeup_id, done.settled_by, done.via, "ok" if done.ok else done.detail)


def load_modules(ctx: AgentContext) -> dict[str, ModuleConfig]:
    return {actor: ModuleConfig.parse(actor, keys.secrets["module"])
            for actor, keys in ctx.keys.items() if "module" in keys.secrets}


def register(ctx: AgentContext, modules: Mapping[str, ModuleConfig] | None = None) -> Modules:
    """Declare the modules' handlers; refuse to start on a pairing that is not one to one."""
    configs = dict(modules) if modules is not None else load_modules(ctx)
    check_modules(configs)
    mods = Modules(ctx, configs, ctx.table(TABLE, partitions=CLIENT_PARTITIONS))
    ctx.handle(HANDED, mods.on_handed, types=(HandedWakeup,), senders=("selector",))
    ctx.handle(DIRECT, mods.on_direct, types=(PaymentRequest,), senders=("shop",),
               sender_is="shop_id")
    ctx.handle(BRAND_ANSWERS, mods.on_brand_answer, types=(BrandAnswer,), senders=("wallet",),
               sender_is="server_id")
    ctx.handle(SETTLED, mods.on_settled, types=(WalletSettled,), senders=("wallet",),
               sender_is="server_id")
    ctx.handle(TIMERS, mods.on_tick, types=(SelectorTick,), senders=("wum",))

    @ctx.on_start
    async def publish_brand_info() -> None:
        await mods.publish()

    @ctx.every(ctx.settings.timer_interval_s)
    async def module_deadlines() -> None:
        try:
            await mods.scan()
        except Exception:
            log.exception("wum: the deadline scan failed; the next tick retries")

    return mods
