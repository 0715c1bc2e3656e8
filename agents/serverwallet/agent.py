"""Server wallets, seed 004's side (JP 2000-026330 SW 10/11, MSW 12a–17a, SSW 12b–17b): the
same wallet servers as seeds 000/001 (``wallet-a``, ``wallet-b``), answering wallet
connection modules. One worker hosts every wallet of the key set (``KIND = "wallet"``).

Top to bottom:

1. M5 (Ex 5, 6): a brand-info question → the brands this server holds a certificate for,
   for that client, signed by the server, to whoever asked (selector or common module).
2. M7/M8: a module asks this server to settle a wake-up (``kessai.wallet.sessions``). Only a
   module paired with this server (its key file's ``modules``) is served; the wake-up must be
   the shop's, for the module's client, and — when a selector chose the module — handed to
   that very module by the selector (its signed hand-over, claims 2–6). Once per wake-up id.
3. :func:`agents.serverwallet.master.decide`: settle itself (the 2nd settlement request of
   seed 003, account sealed to the settlement server, this wallet as the user's authenticated
   channel, cl. 12), or via a slave (``kessai.wallet.slaves``): proxy through the virtual
   module, which relays the slave's settlement back (Ex 7, 9–12), or fetch the slave's
   certificate and settle itself (Ex 8); or ask the user to pick a slave or type its address
   (``kessai.selector.prompts``, answered on ``kessai.wallet.replies``, Ex 9, 10, 12); or
   unroutable with the reason.
4. As a slave: a master's proxy request → settle itself and answer; a certificate request →
   the CA-issued certificate (public) and the account sealed to the settlement server for
   that order only, so the master never sees the card.
5. ``WalletSettled`` to the module: the settlement the wake-up led to.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
from aiokafka.partitioner import murmur2

from agents.serverwallet import master
from agents.serverwallet.master import AskUser, MasterConfig, NoServer, SettleSelf, ViaSlave
from kessai import authenticators, certificates, crypto, envelope
from kessai.authenticators import join_key
from kessai.errors import KessaiError
from kessai.handlers import actor_kind
from kessai.runtime import AgentContext, Inbound
from protocols.user import build_second_request
from schemas.codec import from_body
from schemas.relay import Certificate
from schemas.selector import (
    BrandAnswer,
    BrandQuery,
    HandedWakeup,
    ModuleSettle,
    Prompt,
    PromptReply,
    RoutingEvent,
    SelectorTick,
    SlaveAnswer,
    SlaveRequest,
    UnroutableWakeup,
    WalletSettled,
)
from schemas.v1 import PaymentRequest
from topics.catalogue import CLIENT_PARTITIONS

log = logging.getLogger("kessai.serverwallet")

KIND = "wallet"

BRAND_QUERIES = "kessai.wallet.brand-queries"
ANSWERS_TO = {"selector": "kessai.wallet.brand-answers", "wum": "kessai.wum.brand-answers"}
SESSIONS = "kessai.wallet.sessions"
SLAVES = "kessai.wallet.slaves"
PROMPTS = "kessai.selector.prompts"
REPLIES = "kessai.wallet.replies"
SETTLED = "kessai.wallet.settled"
SECOND = "kessai.settlement.second"
ROUTING_EVENTS = "kessai.selector.routing-events"
UNROUTABLE = "kessai.wakeups.unroutable"
TIMERS = "kessai.wallet.timers"
TABLE = "serverwallet-state"
TICK_RETRY_MS = 2_000


@dataclass
class ServerWallets:
    ctx: AgentContext
    holdings: dict[str, dict[str, list[str]]]  # server → client → brands it holds certs for
    modules: dict[str, dict[str, str]]  # server → module → client (the pairing)
    masters: dict[str, dict[str, MasterConfig]]  # server → client → its master config
    direct: frozenset[str] = frozenset()  # modules that take wake-ups without a selector
    table: MutableMapping[bytes, bytes] = field(default_factory=dict)
    tick_sent: dict[str, int] = field(default_factory=dict)

    def _get(self, *parts: str) -> dict[str, Any] | None:
        raw = self.table.get("\x1f".join(parts).encode())
        return msgpack.unpackb(raw, raw=False) if raw else None

    def _put(self, value: Mapping[str, Any], *parts: str) -> None:
        self.table["\x1f".join(parts).encode()] = msgpack.packb(dict(value), use_bin_type=True)

    def account(self, server: str, client: str) -> dict[str, Any] | None:
        users = self.ctx.actor_keys(server).secrets.get("users", {})
        rec = users.get(client)
        return rec if rec and "pan" in rec else None

    # 1. M5: the brands this server settles for the client, live.
    async def on_brand_query(self, inbound: Inbound) -> None:
        q: BrandQuery = inbound.message
        if q.server_id not in self.ctx.keys:
            return  # a wallet server of another deployment
        await self.ctx.emit(ANSWERS_TO[actor_kind(inbound.sender)], BrandAnswer(
            q.wakeup_id, q.client_id, q.server_id,
            list(self.holdings.get(q.server_id, {}).get(q.client_id, []))),
            q.wakeup_id, key=q.client_id, sender=q.server_id)

    # 2. M7/M8: a module asks this server to settle.
    async def on_session(self, inbound: Inbound) -> None:
        req: ModuleSettle = inbound.message
        server = req.server_id
        if server not in self.ctx.keys or \
                self.modules.get(server, {}).get(req.module_id) != req.client_id:
            await self.ctx.audit("unpaired-module", req.wakeup_id,
                                 f"{req.module_id} is not paired with {server} for "
                                 f"{req.client_id}: nothing settled",
                                 sender=server if server in self.ctx.keys else None)
            return
        try:
            request, raw = self.wakeup_of(req)
        except KessaiError as exc:
            await self.ctx.audit("bad-session", req.wakeup_id, str(exc), sender=server)
            return
        if self._get("d", server, req.wakeup_id) is not None:
            return  # settled (or under way) already: once per wake-up id
        cfg = self.masters.get(server, {}).get(req.client_id)
        holds = self.holdings.get(server, {}).get(req.client_id, [])
        decision = master.decide(request.brands, holds, cfg, req.slave_brands, req.slave_info)
        state = {"module": req.module_id, "client": req.client_id, "raw": raw,
                 "wanted": request.brands, "stage": "deciding"}
        await self._carry_out(server, req.wakeup_id, state, decision, cfg)

    def wakeup_of(self, req: ModuleSettle) -> tuple[PaymentRequest, bytes]:
        """The shop's wake-up the module hands on: directly (no selector: Ex 6–12) or inside
        the selector's signed hand-over to this very module (Ex 1–5).

        Raises:
            KessaiError: not a wake-up for this module's client.
        """
        opened = envelope.open_record(req.handed, self.ctx.registry)
        raw = req.handed
        if isinstance(opened.message, HandedWakeup):
            handed: HandedWakeup = opened.message
            if actor_kind(opened.envelope.sender) != "selector" or \
                    handed.module_id != req.module_id or handed.wakeup_id != req.wakeup_id:
                raise KessaiError("the hand-over is not the selector's, to this module")
            raw = handed.original
            opened = envelope.open_record(raw, self.ctx.registry)
        elif req.module_id not in self.direct:
            raise KessaiError(f"{req.module_id} has a selector: only a wake-up the selector "
                              "handed to it is settled")
        request = opened.message
        if not isinstance(request, PaymentRequest) or opened.envelope.sender != request.shop_id:
            raise KessaiError("not a shop's wake-up")
        if request.user_id != req.client_id or \
                join_key(request.shop_id, request.order_id) != req.wakeup_id:
            raise KessaiError("the wake-up is not this client's")
        return request, raw

    async def _carry_out(self, server: str, wakeup_id: str, state: dict[str, Any],
                         decision: master.MasterDecision, cfg: MasterConfig | None) -> None:
        client = state["client"]
        if isinstance(decision, SettleSelf):
            state.update(stage="done")
            self._put(state, "d", server, wakeup_id)
            await self._event(server, wakeup_id, client, [server], server, decision.reason)
            await self._settle(server, state, decision.brand, "self", None)
        elif isinstance(decision, ViaSlave):
            state.update(stage="slave", slave=decision.slave, brand=decision.brand,
                         action=decision.action)
            if decision.action == "certificate":  # a silent slave must not hold it forever
                state["deadline_ms"] = self.ctx.clock.now_ms() + (
                    cfg.certificate_timeout_ms if cfg else 30_000)
            self._put(state, "d", server, wakeup_id)
            await self._event(server, wakeup_id, client, [decision.slave], decision.slave,
                              f"{decision.action} via {decision.slave}: {decision.reason}")
            await self.ctx.emit(SLAVES, SlaveRequest(
                wakeup_id, client, server, decision.slave, decision.action, decision.brand,
                state["raw"]), wakeup_id, key=client, sender=server)
        elif isinstance(decision, AskUser):
            deadline = self.ctx.clock.now_ms() + (cfg.prompt_timeout_ms if cfg else 120_000)
            state.update(stage="asking", kind=decision.kind, candidates=decision.candidates,
                         deadline_ms=deadline)
            self._put(state, "d", server, wakeup_id)
            await self._event(server, wakeup_id, client, decision.candidates, "",
                              f"asked the user: {decision.reason}")
            await self.ctx.emit(PROMPTS, Prompt(wakeup_id, client, decision.kind,
                                                decision.candidates, deadline, asked_by=server),
                                wakeup_id, key=client, sender=server)
        else:
            assert isinstance(decision, NoServer)
            state.update(stage="done")
            self._put(state, "d", server, wakeup_id)
            await self._event(server, wakeup_id, client, [], "", decision.reason)
            await self.ctx.emit(UNROUTABLE, UnroutableWakeup(
                wakeup_id, client, "master", decision.reason, state["raw"]), wakeup_id,
                key=client, sender=server)
            await self.ctx.emit(SETTLED, WalletSettled(
                wakeup_id, client, state["module"], server, "", "", "none", False,
                f"{decision.reason}: {decision.detail}"), wakeup_id, key=client, sender=server)

    async def _event(self, server: str, wakeup_id: str, client: str, candidates: list[str],
                     chosen: str, reason: str) -> None:
        await self.ctx.emit(ROUTING_EVENTS, RoutingEvent(wakeup_id, client, "master",
                                                         candidates, chosen, reason,
                                                         decided_by=server),
                            wakeup_id, key=client, sender=server)

    async def _settle(self, server: str, state: Mapping[str, Any], brand: str, via: str,
                      account_sealed: bytes | None, tell: bool = True) -> None:
        """The 2nd settlement request (seed 003 M7) as this wallet, for its user."""
        request = envelope.open_record(state["raw"], self.ctx.registry).message
        client = state["client"]
        settlement_public = self.ctx.registry.sealing["settlement"][1]
        if account_sealed is None:
            acct = self.account(server, client)
            if acct is None:
                raise KessaiError(f"{server} holds no account for {client}")
            wallet = {"auth": "channel", "cards": {brand: {"pan": acct["pan"],
                                                           "expiry": acct["expiry"]}}}
            second = build_second_request(request, wallet, brand, settlement_public)
        else:
            second = dataclasses.replace(build_second_request(
                request, {"auth": "channel", "held": True}, brand, settlement_public),
                account_sealed=account_sealed)
        key = join_key(request.shop_id, request.order_id)
        await self.ctx.emit(SECOND, second, key, sender=server)
        if tell:  # a proxied slave tells only its master (all traffic via the master)
            await self.ctx.emit(SETTLED, WalletSettled(
                key, client, state["module"], server, server, brand, via, True),
                key, key=client, sender=server)
        log.info("server wallet %s settles %s for %s with %s (%s)", server, key, client, brand,
                 via)

    # 4. As a slave: the master's proxy or certificate request.
    async def on_slave_request(self, inbound: Inbound) -> None:
        req: SlaveRequest = inbound.message
        if req.slave_id not in self.ctx.keys:
            return
        holds = self.holdings.get(req.slave_id, {}).get(req.client_id, [])
        answer = SlaveAnswer(req.wakeup_id, req.client_id, req.master_id, req.slave_id,
                             req.action, req.brand in holds, req.brand)
        if not answer.ok:
            answer = SlaveAnswer(**{**answer.__dict__,
                                    "detail": f"no {req.brand} certificate for the user"})
        elif req.action == "certificate":
            acct = self.account(req.slave_id, req.client_id)
            cert = from_body(Certificate, _cert_body(acct or {}))
            sealed = crypto.seal(self.ctx.registry.sealing["settlement"][1],
                                 authenticators.pack_account(acct["pan"], acct["expiry"])
                                 if acct else b"", authenticators.account_context(req.wakeup_id))
            answer = SlaveAnswer(**{**answer.__dict__, "certificate": cert,
                                    "account_sealed": sealed})
        else:  # proxy: the slave runs the settlement, following the wake-up via the master
            if self._get("p", req.slave_id, req.wakeup_id) is None:
                self._put({"done": True}, "p", req.slave_id, req.wakeup_id)
                await self._settle(req.slave_id, {"raw": req.original, "client": req.client_id,
                                                  "module": "virtual:" + req.master_id},
                                   req.brand, "proxy", None, tell=False)
        await self.ctx.emit(SLAVES, answer, req.wakeup_id, key=req.client_id,
                            sender=req.slave_id)

    # As the master: the slave's answer.
    async def on_slave_answer(self, inbound: Inbound) -> None:
        ans: SlaveAnswer = inbound.message
        state = self._get("d", ans.master_id, ans.wakeup_id)
        if ans.master_id not in self.ctx.keys or state is None or state["stage"] != "slave" \
                or state.get("slave") != ans.slave_id:
            return
        state["stage"] = "done"
        self._put(state, "d", ans.master_id, ans.wakeup_id)
        client = state["client"]
        if not ans.ok:
            await self._unroutable(ans.master_id, ans.wakeup_id, state,
                                   master.NO_SERVER_FOR_BRAND, ans.detail)
            return
        if ans.action == "proxy":  # the virtual module relays the slave's settlement back
            await self.ctx.emit(SETTLED, WalletSettled(
                ans.wakeup_id, client, state["module"], ans.master_id, ans.slave_id, ans.brand,
                f"proxy:{ans.slave_id}", True), ans.wakeup_id, key=client,
                sender=ans.master_id)
            return
        problem = self._certificate_problem(ans, client)
        if problem:
            await self._unroutable(ans.master_id, ans.wakeup_id, state, "BAD_CERTIFICATE",
                                   problem)
            return
        await self._settle(ans.master_id, state, ans.brand, f"certificate:{ans.slave_id}",
                           ans.account_sealed)

    def _certificate_problem(self, ans: SlaveAnswer, client: str) -> str:
        cert = ans.certificate
        ca = self.ctx.registry.signing_key("ca")
        if cert is None or ca is None or ans.account_sealed is None:
            return "no certificate"
        try:
            certificates.check(cert, ca[1], self.ctx.clock.now_ms())
        except KessaiError as exc:
            return str(exc)
        if (cert.user_id, cert.wallet_id, cert.brand) != (client, ans.slave_id, ans.brand):
            return "the certificate is not the user's, at that slave, for that brand"
        return ""

    async def _unroutable(self, server: str, wakeup_id: str, state: Mapping[str, Any],
                          reason: str, detail: str) -> None:
        client = state["client"]
        await self._event(server, wakeup_id, client, [], "", f"{reason}: {detail}")
        await self.ctx.emit(UNROUTABLE, UnroutableWakeup(wakeup_id, client, "master", reason,
                                                         state["raw"]), wakeup_id, key=client,
                            sender=server)
        await self.ctx.emit(SETTLED, WalletSettled(wakeup_id, client, state["module"], server,
                                                   "", "", "none", False, f"{reason}: {detail}"),
                            wakeup_id, key=client, sender=server)

    # Ex 9, 10, 12: the user's answer to the master's prompt.
    async def on_reply(self, inbound: Inbound) -> None:
        reply: PromptReply = inbound.message
        found = [(s, st) for s in self.ctx.keys
                 if (st := self._get("d", s, reply.wakeup_id)) is not None
                 and st["stage"] == "asking" and st["client"] == reply.client_id]
        if not found:
            await self.ctx.audit("unknown-reply", reply.wakeup_id,
                                 "reply for no open prompt of a server wallet ignored",
                                 sender=next(iter(self.ctx.keys)))
            return
        server, state = found[0]
        if reply.cancel or self.ctx.clock.now_ms() >= state["deadline_ms"]:
            state["stage"] = "done"
            self._put(state, "d", server, reply.wakeup_id)
            await self._unroutable(server, reply.wakeup_id, state,
                                   "USER_CANCEL" if reply.cancel else "USER_TIMEOUT",
                                   "the user did not designate a slave")
            return
        cfg = self.masters.get(server, {}).get(reply.client_id) or MasterConfig()
        slave = master.on_answer(state["kind"], state["candidates"], reply.choice, cfg.allow)
        if slave is None:
            await self.ctx.audit(master.SLAVE_NOT_ALLOWED, reply.wakeup_id,
                                 f"{reply.choice!r} was not offered or is not on the "
                                 "allow-list: ignored", sender=server)
            # Ask again (same question, same deadline) so the user's page shows it.
            await self.ctx.emit(PROMPTS, Prompt(reply.wakeup_id, reply.client_id,
                                                state["kind"], state["candidates"],
                                                state["deadline_ms"], asked_by=server),
                                reply.wakeup_id, key=reply.client_id, sender=server)
            return
        request = envelope.open_record(state["raw"], self.ctx.registry).message
        wanted = [b for b in request.brands] or [""]
        await self._carry_out(server, reply.wakeup_id, state,
                              ViaSlave(slave, wanted[0], "proxy", f"the user designated {slave}"),
                              cfg)


    # The master's prompts (and its wait for a slave's certificate) time out on the clock,
    # without traffic: a timer scans the partitions this worker owns and ticks through
    # kessai.wallet.timers (the terminal's way).
    def _open_prompts(self) -> list[tuple[str, str, dict[str, Any]]]:
        out = []
        for key, raw in list(self.table.items()):
            parts = key.split(b"\x1f")
            if parts[0] == b"d" and len(parts) == 3:
                state = msgpack.unpackb(raw, raw=False)
                if state.get("stage") == "asking" or (
                        state.get("stage") == "slave" and "deadline_ms" in state):
                    out.append((parts[1].decode(), parts[2].decode(), state))
        return out

    async def scan(self) -> None:
        now, owned = self.ctx.clock.now_ms(), self.ctx.active_partitions(TIMERS)
        for server, _, state in self._open_prompts():
            client = state["client"]
            if state["deadline_ms"] > now or server not in self.ctx.keys \
                    or (murmur2(client.encode()) & 0x7FFFFFFF) % CLIENT_PARTITIONS not in owned \
                    or now - self.tick_sent.get(client, 0) < TICK_RETRY_MS:
                continue
            self.tick_sent[client] = now
            await self.ctx.emit(TIMERS, SelectorTick(client, now), f"client:{client}",
                                key=client, sender=server)

    async def on_tick(self, inbound: Inbound) -> None:
        tick: SelectorTick = inbound.message
        self.tick_sent.pop(tick.client_id, None)
        now = self.ctx.clock.now_ms()
        for server, wakeup_id, state in self._open_prompts():
            if state["client"] == tick.client_id and state["deadline_ms"] <= now:
                asking = state["stage"] == "asking"
                state["stage"] = "done"
                self._put(state, "d", server, wakeup_id)
                if asking:
                    await self._unroutable(server, wakeup_id, state, "USER_TIMEOUT",
                                           "the user did not answer in time")
                else:
                    await self._unroutable(server, wakeup_id, state, master.SLAVE_TIMEOUT,
                                           f"no certificate from {state['slave']} in time")


def _cert_body(acct: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(acct.get("certificate", {}))
    for name in ("public_key", "ca_signature"):
        if isinstance(body.get(name), str):
            body[name] = bytes.fromhex(body[name])
    return body


def load(ctx: AgentContext) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, str]],
                                     dict[str, dict[str, MasterConfig]], frozenset[str]]:
    """Holdings, module pairings (``module: client`` or ``module: {client, direct}``), master
    configurations and the direct modules, from the wallets' key files."""
    holdings: dict[str, dict[str, list[str]]] = {}
    modules: dict[str, dict[str, str]] = {}
    masters: dict[str, dict[str, MasterConfig]] = {}
    direct: set[str] = set()
    for server, keys in ctx.keys.items():
        users = keys.secrets.get("users", {})
        holdings[server] = {u: [rec["brand"]] for u, rec in users.items() if rec.get("brand")}
        modules[server] = {}
        for module, v in keys.secrets.get("modules", {}).items():
            modules[server][module] = v["client"] if isinstance(v, dict) else str(v)
            if isinstance(v, dict) and v.get("direct"):
                direct.add(module)
        masters[server] = {c: MasterConfig.parse(raw)
                           for c, raw in keys.secrets.get("master", {}).items()}
    return holdings, modules, masters, frozenset(direct)


def register(ctx: AgentContext, *, holdings: Mapping[str, dict[str, list[str]]] | None = None,
             modules: Mapping[str, dict[str, str]] | None = None,
             masters: Mapping[str, dict[str, MasterConfig]] | None = None,
             direct: frozenset[str] | None = None) -> ServerWallets:
    """Declare the server wallets' seed-004 handlers; keyword arguments replace the key
    files' configuration (tests, the demo)."""
    k_hold, k_mod, k_mast, k_direct = load(ctx)
    sw = ServerWallets(ctx, dict(holdings if holdings is not None else k_hold),
                       dict(modules if modules is not None else k_mod),
                       dict(masters if masters is not None else k_mast),
                       direct if direct is not None else k_direct,
                       ctx.table(TABLE, partitions=CLIENT_PARTITIONS))
    ctx.handle(BRAND_QUERIES, sw.on_brand_query, types=(BrandQuery,),
               senders=("selector", "wum"))
    ctx.handle(SESSIONS, sw.on_session, types=(ModuleSettle,), senders=("wum",),
               sender_is="module_id")
    ctx.handle(SLAVES, sw.on_slave_request, types=(SlaveRequest,), senders=("wallet",),
               sender_is="master_id")
    ctx.handle(SLAVES, sw.on_slave_answer, types=(SlaveAnswer,), senders=("wallet",),
               sender_is="slave_id")
    ctx.handle(REPLIES, sw.on_reply, types=(PromptReply,),
               senders=("operator", "wallet", "selector"))  # selector: the user's console
    ctx.handle(TIMERS, sw.on_tick, types=(SelectorTick,), senders=("wallet",))

    @ctx.every(ctx.settings.timer_interval_s)
    async def master_prompt_deadlines() -> None:
        try:
            await sw.scan()
        except Exception:
            log.exception("serverwallet: the deadline scan failed; the next tick retries")

    return sw
