"""Terminal worker: the users' devices of seed 003 (利用者端末), claim 51, [0079].

Protocol, top to bottom, per purchase session:

1. A1      a purchase command (the user's button presses) → the order request (M1) to the shop.
2. A7–A14  the shop's payment-processing request (M4) arrives on ``kessai.wakeups``; the device
           shows it and the user checks it ("if there is no mistake").
3. A15     after the user's think time, the 2nd settlement request (M7) →
           ``kessai.settlement.second``, with the account and password sealed to the settlement
           server and, for signature users, the user authenticator (cl. 10/12/13/15).
4. A19–A22 the result (M9) arrives; the device checks the settlement authenticator made for the
           user (cl. 11) and refuses a result without a valid one (the user is told); an
           authentic result is shown and, in VIA_TERMINAL mode, relayed to the shop with the
           shop authenticator unchanged (cl. 7).

Every purchase in progress survives a kill -9 (issue 6, item 10): its state (:mod:`session`)
lives in the changelog-backed ``terminal-sessions`` table, keyed by session. Wake-ups and
results are keyed by join key, so the worker that receives one re-keys it by session onto
``kessai.terminal.sessions`` (co-partitioned with the purchase commands), and the worker that
owns the session's partition handles it there — like the settlement's re-keyed 1st request.
The user's think time is a durable deadline: a timer scans the partitions this worker actively
owns and sends a ``DeadlineTick`` (naming the session) through the same topic, so every state
change happens inside a stream event and is written to the changelog before its offset is
committed.

Delivery is at-least-once. A redelivered command, wake-up or result finds the state already
written and changes nothing; the one effect a crash can repeat is the 2nd request of the event
being handled when the worker died, which the settlement server keeps once (a same-side
duplicate, R24). Card numbers and passwords never reach a log, an exception message, the
table or the shop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.partitioner import murmur2

from agents.terminal import session, wallet
from kessai.authenticators import join_key
from kessai.runtime import AgentContext, Inbound
from schemas.v1 import (
    DeadlineTick,
    OrderRequest,
    PaymentRequest,
    PaymentResult,
    PurchaseCommand,
)
from topics.catalogue import by_name

log = logging.getLogger("kessai.terminal")

ACTORS: list[str] = ["terminal"]

COMMANDS = "kessai.terminal.commands"
SESSIONS = "kessai.terminal.sessions"
ORDER_REQUESTS = "kessai.order-requests"
WAKEUPS = "kessai.wakeups"
SECOND = "kessai.settlement.second"
RESULTS = "kessai.payment-results"
RELAYED = "kessai.payment-results.relayed"

TABLE = "terminal-sessions"
COMMAND_SENDERS = ("operator", "relay")
TICK_RETRY_MS = 2_000  # a tick not handled by then (lost in a crash) is sent again


def partition_of(session_id: str, partitions: int) -> int:
    """The partition the default (murmur2) partitioner gives a session key."""
    return (murmur2(session_id.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class Terminal:
    ctx: AgentContext
    table: MutableMapping[bytes, bytes] = field(default_factory=dict)
    policy: session.Policy = field(default_factory=session.Policy)
    tick_sent: dict[bytes, int] = field(default_factory=dict)

    def wallet_of(self, user_id: str) -> Mapping[str, Any] | None:
        wallets: Mapping[str, Any] = self.ctx.actor_keys("terminal").secrets.get("wallets", {})
        return wallets.get(user_id)

    def load(self, session_id: str) -> session.Session | None:
        raw = self.table.get(session_id.encode())
        return session.decode(raw) if raw else None

    # 1. A1: the user orders.
    async def on_command(self, inbound: Inbound) -> None:
        cmd: PurchaseCommand = inbound.message
        if self.wallet_of(cmd.user_id) is None:
            await self.ctx.audit("unknown-user", f"session:{cmd.session}",
                                 f"no device holds a wallet for user {cmd.user_id!r}")
            return
        before = self.load(cmd.session)
        step = session.on_command(before, cmd, inbound.partition, self.ctx.clock.now_ms(),
                                  self.policy, inbound.trace_id)
        await self._apply(cmd.session, before, step)

    # 2. and 4.: a wake-up or a result for a session → the worker that holds the session.
    async def on_wakeup(self, inbound: Inbound) -> None:
        request: PaymentRequest = inbound.message  # the door checked: a shop, for itself
        if self._not_ours(request.session):
            return
        await self.ctx.emit(SESSIONS, request, join_key(request.shop_id, request.order_id),
                            key=request.session, sender="terminal")

    async def on_result(self, inbound: Inbound) -> None:
        result: PaymentResult = inbound.message
        if result.recipient != "user" or self._not_ours(result.session):
            return  # the shop's copy (emb. 2), or no purchase of these devices
        await self.ctx.emit(SESSIONS, result, join_key(result.shop_id, result.order_id),
                            key=result.session, sender="terminal")

    def _not_ours(self, session_id: str) -> bool:
        """True only when this worker owns the session's partition and holds no such session
        (a relay purchase, say): nothing to hand on. Otherwise the owner decides."""
        partition = partition_of(session_id, by_name(SESSIONS).partitions)
        return (partition in self.ctx.active_partitions(SESSIONS)
                and session_id.encode() not in self.table)

    # 2. A7–A14: the payment request, at the worker that holds the session.
    async def on_session_request(self, inbound: Inbound) -> None:
        request: PaymentRequest = inbound.message
        before = self.load(request.session)
        if before is not None and before.shown is None:
            log.info("terminal %s shows %s", request.session, wallet.describe(request))
        step = session.on_payment_request(before, request, self.ctx.clock.now_ms(),
                                          self.policy)
        await self._apply(request.session, before, step)

    # 4. A19–A22: the result, at the worker that holds the session.
    async def on_session_result(self, inbound: Inbound) -> None:
        result: PaymentResult = inbound.message
        before = self.load(result.session)
        authentic = before is not None and wallet.result_authentic(
            self.wallet_of(before.purchase().user_id) or {}, result)
        step = session.on_result(before, result, authentic, self.ctx.clock.now_ms(),
                                 self.policy)
        await self._apply(result.session, before, step, result)

    # 3. The user's think time is over (or the session is done): a durable deadline.
    async def on_tick(self, inbound: Inbound) -> None:
        tick: DeadlineTick = inbound.message
        session_id = tick.join_key  # a terminal tick names the session
        if inbound.key != session_id.encode():
            return
        self.tick_sent.pop(session_id.encode(), None)
        before = self.load(session_id)
        await self._apply(session_id, before, session.on_tick(before, self.ctx.clock.now_ms()))

    async def scan(self) -> None:
        """Send a tick for every due session of the partitions this worker actively owns
        (the table also holds standby copies of other workers' partitions)."""
        active = self.ctx.active_partitions(SESSIONS)
        if not active:
            return
        now = self.ctx.clock.now_ms()
        for key, raw in list(self.table.items()):
            due, partition = session.header(raw)
            if due > now or partition not in active:
                continue
            if now - self.tick_sent.get(key, 0) < TICK_RETRY_MS:
                continue
            self.tick_sent[key] = now
            state = session.decode(raw)
            await self.ctx.emit(SESSIONS, DeadlineTick(state.session, due), state.session,
                                partition=partition, sender="terminal",
                                trace_id=state.trace_id or None)
        for key, at in list(self.tick_sent.items()):
            if now - at > 30 * TICK_RETRY_MS:
                del self.tick_sent[key]  # its session went away another way

    # The shell: write the state (changelog), then carry out the effects in order.
    async def _apply(self, session_id: str, before: session.Session | None,
                     step: session.Step, result: PaymentResult | None = None) -> None:
        key = session_id.encode()
        if step.state is None:
            if key in self.table:
                del self.table[key]  # a tombstone in the changelog
        elif step.state != before:
            self.table[key] = session.encode(step.state)
        for effect in step.effects:
            await self._carry_out(step.state or before, effect, result)

    async def _carry_out(self, state: session.Session | None, effect: session.Effect,
                         result: PaymentResult | None) -> None:
        if isinstance(effect, session.Audit):
            await self.ctx.audit(effect.kind, effect.key, effect.detail)
        elif isinstance(effect, session.Note):
            assert state is not None
            log.info("terminal %s: %s", state.session, effect.text)
        elif isinstance(effect, session.Tell):
            assert state is not None
            log.info("terminal %s tells the user: %s", state.session, effect.text)
        elif isinstance(effect, session.SendOrder):
            assert state is not None
            cmd = state.purchase()
            await self.ctx.emit(ORDER_REQUESTS, OrderRequest(
                session=cmd.session, user_id=cmd.user_id, shop_id=cmd.shop_id, items=cmd.items,
                delivery=wallet.delivery_for(cmd.user_id), scenario=cmd.scenario,
            ), cmd.session, sender="terminal")
        elif isinstance(effect, session.Pay):
            assert state is not None
            await self._pay(state)
        elif isinstance(effect, session.Relay):
            assert result is not None
            relay = wallet.forged_relay(result) if effect.forged else wallet.relay_of(result)
            await self.ctx.emit(RELAYED, relay, join_key(result.shop_id, result.order_id),
                                sender="terminal")

    # 3. A15: the 2nd settlement request, straight to the settlement server.
    async def _pay(self, state: session.Session) -> None:
        cmd, request = state.purchase(), state.payment_request()
        assert request is not None
        key = join_key(request.shop_id, request.order_id)
        user_wallet = self.wallet_of(cmd.user_id)
        if user_wallet is None:
            await self.ctx.audit("unknown-user", key, f"no wallet for user {cmd.user_id!r}")
            return
        try:
            second = wallet.build_second_request(
                request, user_wallet, cmd.card, self.ctx.registry.sealing["settlement"][1],
                tamper=cmd.user_tamper, wrong_password=cmd.wrong_password,
                forge_authenticator=cmd.forge_authenticator)
        except wallet.WalletError as exc:
            await self.ctx.audit("wallet", key, str(exc))
            return
        for _ in range(2 if cmd.duplicate_second else 1):
            await self.ctx.emit(SECOND, second, key, sender="terminal")
        log.info("terminal %s sent the 2nd request for order %s", request.session,
                 request.order_id)


def register(ctx: AgentContext) -> Terminal:
    """Declare the terminal's handlers, its session table and its deadline timer."""
    terminal = Terminal(ctx, ctx.table(TABLE, partitions=by_name(COMMANDS).partitions),
                        session.Policy.from_env())
    ctx.handle(COMMANDS, terminal.on_command, types=(PurchaseCommand,),
               senders=COMMAND_SENDERS)
    ctx.handle(WAKEUPS, terminal.on_wakeup, types=(PaymentRequest,), senders=("shop",),
               sender_is="shop_id")  # a shop speaks only for itself
    ctx.handle(RESULTS, terminal.on_result, types=(PaymentResult,), senders=("settlement",))
    ctx.handle(SESSIONS, terminal.on_session_request, types=(PaymentRequest,),
               senders=("terminal",))
    ctx.handle(SESSIONS, terminal.on_session_result, types=(PaymentResult,),
               senders=("terminal",))
    ctx.handle(SESSIONS, terminal.on_tick, types=(DeadlineTick,), senders=("terminal",))

    @ctx.every(ctx.settings.timer_interval_s)
    async def terminal_deadlines() -> None:
        try:
            await terminal.scan()
        except Exception:
            log.exception("terminal: the deadline scan failed; the next tick retries")

    return terminal

