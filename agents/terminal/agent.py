"""Terminal worker: the users' devices of seed 003 (利用者端末), claim 51, [0079].

Protocol, top to bottom, per purchase session:

1. A1      a purchase command (the user's button presses) → the order request (M1) to the shop.
2. A7–A14  the shop's payment-processing request (M4) arrives on ``kessai.wakeups``; the device
           shows it and the user checks it ("if there is no mistake").
3. A15     after the user's think time, the 2nd settlement request (M7) →
           ``kessai.settlement.second``, with the account and password sealed to the settlement
           server and, for signature users, the user authenticator (cl. 10/12/13/15).
4. A19–A22 the result (M9) arrives; the device checks its user authenticator (cl. 11) and, in
           VIA_TERMINAL mode, relays it to the shop with the shop authenticator unchanged (cl. 7).

Sessions live in memory: this is the user's device, and a restarted device has forgotten its
purchases. Card numbers and passwords never reach a log, an exception message or the shop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.terminal import wallet
from kessai import devdata
from kessai.authenticators import join_key
from kessai.errors import KessaiError
from kessai.runtime import AgentContext, Inbound, consume
from schemas.v1 import OrderRequest, PaymentRequest, PaymentResult, PurchaseCommand

log = logging.getLogger("kessai.terminal")

ACTORS: list[str] = ["terminal"]

COMMANDS = "kessai.terminal.commands"
ORDER_REQUESTS = "kessai.order-requests"
WAKEUPS = "kessai.wakeups"
SECOND = "kessai.settlement.second"
RESULTS = "kessai.payment-results"
RELAYED = "kessai.payment-results.relayed"

COMMAND_SENDERS = ("operator", "relay")
MAX_SESSIONS = 100_000  # a device remembers recent purchases, not all of them


@dataclass
class Session:
    command: PurchaseCommand
    shown: PaymentRequest | None = None  # the payment request on the screen (A12)
    result: PaymentResult | None = None
    relayed: bool = False


@dataclass
class Terminal:
    ctx: AgentContext
    sessions: collections.OrderedDict[str, Session] = field(
        default_factory=collections.OrderedDict)
    pending: set[asyncio.Task[None]] = field(default_factory=set)

    def wallet_of(self, user_id: str) -> Mapping[str, Any] | None:
        wallets: Mapping[str, Any] = self.ctx.actor_keys("terminal").secrets.get("wallets", {})
        return wallets.get(user_id)

    # 1. A1: the user orders.
    async def on_command(self, inbound: Inbound) -> None:
        cmd: PurchaseCommand = inbound.message
        where = f"session:{cmd.session}"
        if inbound.sender not in COMMAND_SENDERS:
            await self.ctx.audit("unexpected-sender", where,
                                 f"purchase command from {inbound.sender!r} ignored")
            return
        if cmd.session in self.sessions:
            return  # the same purchase delivered again: one order per session
        if self.wallet_of(cmd.user_id) is None:
            await self.ctx.audit("unknown-user", where,
                                 f"no device holds a wallet for user {cmd.user_id!r}")
            return
        self.sessions[cmd.session] = Session(cmd)
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        await self.ctx.emit(ORDER_REQUESTS, OrderRequest(
            session=cmd.session, user_id=cmd.user_id, shop_id=cmd.shop_id, items=cmd.items,
            delivery=wallet.delivery_for(cmd.user_id), scenario=cmd.scenario,
        ), cmd.session, sender="terminal")

    # 2. A7–A14: the shop wakes the device with the payment-processing request.
    async def on_payment_request(self, inbound: Inbound) -> None:
        request: PaymentRequest = inbound.message
        key = join_key(request.shop_id, request.order_id)
        if inbound.sender not in devdata.SHOPS or inbound.sender != request.shop_id:
            # A shop speaks only for itself.
            await self.ctx.audit("unexpected-sender", key,
                                 f"payment request from {inbound.sender!r} ignored")
            return
        session = self.sessions.get(request.session)
        if session is None:
            return  # another device's purchase
        if session.shown is not None:
            if session.shown.order_id != request.order_id:
                await self.ctx.audit("second-payment-request", key,
                                     f"session {request.session} already pays order "
                                     f"{session.shown.order_id}")
            return  # shown already: a repeat of the same request
        cmd = session.command
        if (request.user_id, request.shop_id) != (cmd.user_id, cmd.shop_id):
            await self.ctx.audit("unexpected-payment-request", key,
                                 "payment request for another user or shop than ordered")
            return
        session.shown = request
        log.info("terminal %s shows %s", request.session, wallet.describe(request))
        mistake = wallet.check_displayed(cmd.items, request)
        if mistake is not None:
            await self.ctx.audit("user-refused", key, mistake)
            return
        if cmd.abandon:
            log.info("terminal %s: the user walks away from order %s", request.session,
                     request.order_id)
            return
        # The user's think time must not hold up the stream: pay from a task.
        self._later(cmd.second_delay_ms, lambda: self._pay(session, request))

    # 3. A15: the 2nd settlement request, straight to the settlement server.
    async def _pay(self, session: Session, request: PaymentRequest) -> None:
        cmd = session.command
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

    # 4. A19–A22: the result for the user; relayed to the shop in emb. 1.
    async def on_payment_result(self, inbound: Inbound) -> None:
        result: PaymentResult = inbound.message
        if result.recipient != "user":
            return  # the shop's copy (emb. 2)
        key = join_key(result.shop_id, result.order_id)
        if inbound.sender != "settlement":
            await self.ctx.audit("unexpected-sender", key,
                                 f"payment result from {inbound.sender!r} ignored")
            return
        session = self.sessions.get(result.session)
        if session is None:
            return
        shown = session.shown
        if shown is not None and (shown.shop_id, shown.order_id) != (result.shop_id,
                                                                      result.order_id):
            await self.ctx.audit("unexpected-result", key,
                                 f"session {result.session} pays order {shown.order_id}")
            return
        user_wallet = self.wallet_of(session.command.user_id) or {}
        if not wallet.result_authentic(user_wallet, result):
            # Cl. 11 failed: tell the user. The shop verifies its own authenticator, so the
            # relay below cannot make it ship on a bad result.
            log.warning("terminal %s: the result for order %s does not authenticate",
                        result.session, result.order_id)
            await self.ctx.audit("bad-result-authenticator", key,
                                 "user authenticator of the result does not verify")
        session.result = result
        log.info("terminal %s: order %s %s", result.session, result.order_id, result.outcome)
        if result.result_mode != "VIA_TERMINAL" or session.relayed:
            return
        relay = (wallet.forged_relay(result) if session.command.forge_relay
                 else wallet.relay_of(result))
        await self.ctx.emit(RELAYED, relay, key, sender="terminal")
        session.relayed = True

    def _later(self, delay_ms: int, work: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            try:
                if delay_ms > 0:
                    await asyncio.sleep(delay_ms / 1000)
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = str(exc) if isinstance(exc, KessaiError) else type(exc).__name__
                log.error("terminal: a delayed step failed: %s", detail)

        task = asyncio.get_running_loop().create_task(run())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def stop(self) -> None:
        for task in list(self.pending):
            task.cancel()
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)


Handler = Callable[[Inbound], Awaitable[None]]


def register(ctx: AgentContext) -> None:
    """Attach the terminal's consumers to ``ctx.app``."""
    terminal = Terminal(ctx)
    consume(ctx, "terminal-commands", COMMANDS, terminal.on_command)
    consume(ctx, "terminal-wakeups", WAKEUPS, terminal.on_payment_request)
    consume(ctx, "terminal-payment-results", RESULTS, terminal.on_payment_result)

    async def stop(sender: Any, **kwargs: Any) -> None:
        await terminal.stop()

    ctx.app.on_before_shutdown.connect(stop)  # type: ignore[arg-type]  # mode's stubs reject handlers

