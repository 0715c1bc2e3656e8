"""Shop worker: seed 003's shop server (販売店サーバ), claims 16–19, embodiments 1–3.

Protocol, top to bottom:

1. A1–A2   an order request (M1) arrives from a terminal or relay; the shop prices it against
           its catalogue (its key file's) and assigns the order id, derived from the
           request's message id (redelivery-safe).
2. A3      the 1st settlement request (M2) → ``kessai.settlement.first``: order id, content or
           its hash, amount, result route. Never any account information. What it states is
           the priced order (``statement``: honest here; the simulator injects a dishonest
           shop for demonstrations, ``sim/shop.py``).
   [0027]  settlement-assigned ids (spec R3): the 1st request goes without an order id, and
           nothing more happens until the acceptance (M3) names the id.
3. A7      the payment-processing request (M4) → the wake-up topic of the channel that placed
           the order (``kessai.wakeups`` for a terminal, ``.relay``, ``.selector``: the
           catalogue's ``WAKEUP_TOPICS``), for the user's device to show, and the status
           AWAITING_PAYMENT → ``kessai.order-status``.
4. Result  relayed by the terminal (emb. 1, A23), sent directly (emb. 2, B20, with the receipt
           B21) or asked for by inquiry (emb. 3, C22–C26, a timer). The shop checks the settlement
           server's authenticator and the amount, and only then says PAID (cl. 19, spec R28).
           In VIA_TERMINAL mode the shop does not depend on the terminal alone: an order with no
           result ``KESSAI_SHOP_RESULT_WAIT_MS`` after its payment request is asked about too
           (:mod:`agents.shop.inquiries`), so an approved charge always ends PAID at the shop.

Every handler is idempotent: a redelivered or duplicated message re-emits the same requests
and never changes a final status; it re-announces one only when it is the very record that
made the order final (its announcement may have died with the worker).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agents.shop import carrier, inquiries, pricing, procedure
from agents.shop import catalogue as catalogues
from agents.shop import http as shop_http
from agents.shop.catalogue import Catalogue
from agents.shop.inquiries import PollPolicy
from agents.shop.orders import AWAITING_PAYMENT, PENDING_ACK, Order, OrderDB, placing_source
from agents.shop.results import RESULT_REJECTED, Verdict, judge_answer, judge_result
from agents.shop.scenario import Scenario
from agents.shop.statement import HONEST, Statement
from kessai import canonical
from kessai.authenticators import join_key
from kessai.errors import KessaiError
from kessai.handlers import actor_kind
from kessai.money import Money
from kessai.runtime import AgentContext, Inbound
from schemas.v1 import (
    FirstAccepted,
    FirstRequest,
    InquiryAnswer,
    OrderRequest,
    OrderStatus,
    PaymentRequest,
    PaymentResult,
    ResultAck,
    ResultInquiry,
    ResultRelay,
)
from topics.catalogue import by_name, wakeup_topic

log = logging.getLogger("kessai.shop")

KIND = "shop"  # one shop server serves every shop of the key set ([0016])

ORDER_REQUESTS = "kessai.order-requests"
FIRST = "kessai.settlement.first"
FIRST_ACKS = "kessai.settlement.first-acks"
ORDER_STATUS = "kessai.order-status"
RESULTS = "kessai.payment-results"
RELAYED = "kessai.payment-results.relayed"
RESULT_ACKS = "kessai.payment-results.acks"
INQUIRIES = "kessai.result-inquiries"
ANSWERS = "kessai.result-inquiries.answers"

ORDER_SENDERS = ("terminal", "relay")  # who may place orders and relay results
# Who may place orders: a multi-wallet client's selector, or its one module where it has no
# selector, too (seed 004). Each is also a wake-up channel: the order's M4 goes back to the
# kind that placed it (WAKEUP_TOPICS).
PLACERS = (*ORDER_SENDERS, "selector", "wum")
MAX_ID_ATTEMPTS = 8  # order-id collisions in a row before the request is dead-lettered
INQUIRY_BATCH = 500  # due inquiries taken per timer tick


@dataclass
class Shop:
    ctx: AgentContext
    db: OrderDB
    poll: PollPolicy
    statement: Statement = HONEST
    catalogues: dict[str, Catalogue] = field(default_factory=dict)  # default: the key files'

    def __post_init__(self) -> None:
        self.catalogues = self.catalogues or catalogues.of_shops(self.ctx.keys)

    # 1. A1–A2: order request in, priced, order id assigned.
    async def on_order_request(self, inbound: Inbound) -> None:
        req: OrderRequest = inbound.message
        if actor_kind(inbound.sender) not in PLACERS:
            await self.ctx.audit("unexpected-sender", f"session:{req.session}",
                                 f"order request from {inbound.sender!r} ignored")
            return
        if req.shop_id not in self.ctx.keys:
            await self.ctx.audit("unknown-shop", f"session:{req.session}",
                                 f"order request for shop {req.shop_id!r}, not served here")
            return
        source_id = placing_source(inbound.opened.envelope.id,
                                   await self.db.by_session(req.shop_id, req.session),
                                   req.user_id)
        try:
            scenario = Scenario.parse(req.scenario, self.ctx.settings.default_result_mode)
            content = pricing.price(req.items, self.catalogues[req.shop_id])
            # What the 1st request states: the content, unless a simulator made this shop lie.
            stated = self.statement.first_request(content, req)
        except pricing.OrderRejected as exc:
            ref = pricing.order_id_for(source_id)
            log.info("shop %s rejects order %s: %s", req.shop_id, ref, exc)
            await self._status(req.shop_id, ref, req.session, "NOT_PAID", "REJECTED", str(exc))
            return

        now = self.ctx.clock.now_ms()
        # The result inquiry deadline (emb. 3), from the payment request; with a settlement-
        # assigned id the payment request waits for the acceptance, and so does the deadline.
        first_poll = (inquiries.first_inquiry_ms(scenario.result_mode, now, self.poll)
                      if scenario.shop_assigns_id else None)
        for attempt in range(MAX_ID_ATTEMPTS):
            ref = pricing.order_id_for(source_id, attempt)
            order = await self.db.add(Order(
                shop_id=req.shop_id, request_ref=ref,
                order_id=ref if scenario.shop_assigns_id else "",
                shop_assigned=scenario.shop_assigns_id, source_id=source_id,
                session=req.session, user_id=req.user_id, result_mode=scenario.result_mode,
                content=content, amount=stated.amount,
                status=AWAITING_PAYMENT if scenario.shop_assigns_id else PENDING_ACK,
                next_poll_ms=first_poll, trace_id=inbound.trace_id,
                wake_to=actor_kind(inbound.sender), brands=",".join(scenario.brands)), now)
            if order is not None and order.source_id == source_id:
                break  # a new order, or this request's own order on redelivery
        else:
            raise KessaiError(f"no free order id for request {source_id} after "
                              f"{MAX_ID_ATTEMPTS} attempts")
        if order.final:
            log.info("order %s of shop %s is already %s", order.order_id, order.shop_id,
                     order.status)
            return

        # 2. A3: the 1st settlement request. Rebuilt from the same inputs on redelivery, so the
        # settlement server sees an identical body (a no-op duplicate, spec R24).
        first = FirstRequest(
            shop_id=req.shop_id,
            order_id=ref if scenario.shop_assigns_id else "",
            request_ref=ref,
            amount=stated.amount,
            result_mode=scenario.result_mode,  # type: ignore[arg-type]
            content=None if scenario.send_hash else stated,
            content_hash=canonical.content_hash(stated) if scenario.send_hash else None,
            user_ref=req.user_id,
        )
        cid = (join_key(req.shop_id, ref) if scenario.shop_assigns_id
               else f"{req.shop_id}/ref:{ref}")
        await self.ctx.emit(FIRST, first, cid, sender=req.shop_id)

        # 3. A7, unless the order still waits for its settlement-assigned id (R3).
        if order.status == AWAITING_PAYMENT:
            await self._request_payment(order)

    # 2'. [0027]: the settlement server accepted a 1st request and assigned the order id.
    async def on_first_accepted(self, inbound: Inbound) -> None:
        ack: FirstAccepted = inbound.message
        where = f"{ack.shop_id}/ref:{ack.request_ref}"
        if ack.shop_id not in self.ctx.keys:
            return
        order = await self.db.by_ref(ack.shop_id, ack.request_ref)
        if order is None:
            await self.ctx.audit("unknown-order", where, "acceptance for no pending order",
                                 sender=ack.shop_id)
            return
        if order.shop_assigned:
            return  # the optional acceptance of a shop-assigned order (R4): nothing to do
        if not ack.order_id:
            await self.ctx.audit("bad-acceptance", where, "acceptance without an order id",
                                 sender=ack.shop_id)
            return
        next_poll = inquiries.first_inquiry_ms(order.result_mode, self.ctx.clock.now_ms(),
                                               self.poll)
        order = await self.db.assign(ack.shop_id, ack.request_ref, ack.order_id, next_poll)
        if order is None or order.order_id != ack.order_id:
            await self.ctx.audit("conflicting-acceptance", where,
                                 f"order already has id {order.order_id if order else '?'}, "
                                 f"acceptance names {ack.order_id}", sender=ack.shop_id)
            return
        # A repeated acceptance re-sends M4 while the order awaits payment: the device ignores
        # a request it already shows, and a crash between assign and emit loses nothing.
        if order.status == AWAITING_PAYMENT:
            await self._request_payment(order)

    # 3. A7: the payment-processing request shows the user the honest content and amount.
    async def _request_payment(self, order: Order) -> None:
        key = join_key(order.shop_id, order.order_id)
        topic = wakeup_topic(order.wake_to)  # addressed by channel (issue 8 item 3)
        brands = {"brands": order.brands.split(",")} if order.brands else {}
        await self.ctx.emit(topic, PaymentRequest(
            shop_id=order.shop_id, order_id=order.order_id, session=order.session,
            user_id=order.user_id, content=order.content, amount=order.content.amount,
            **brands), key, key=order.user_id if by_name(topic).key == "client" else key,
            sender=order.shop_id)
        await self._status(order.shop_id, order.order_id, order.session, AWAITING_PAYMENT)

    # 4. Emb. 2 (B19–B22): the settlement server sends the result directly; the shop receipts it.
    async def on_payment_result(self, inbound: Inbound) -> None:
        result: PaymentResult = inbound.message
        if result.recipient != "shop":
            return  # the user's copy of the result
        key = join_key(result.shop_id, result.order_id)
        if result.shop_id not in self.ctx.keys:
            return
        await self._judge(result.shop_id, result.order_id, result.outcome, result.amount,
                          result.shop_authenticator, "direct", inbound.opened.envelope.id)
        # B21: receipt for every copy, redeliveries included, so the server stops resending.
        await self.ctx.emit(RESULT_ACKS, ResultAck(result.shop_id, result.order_id), key,
                            sender=result.shop_id)

    # 4. Emb. 1 (A22–A23): the terminal relays the result with the authenticator copied (cl. 7).
    async def on_relayed_result(self, inbound: Inbound) -> None:
        relay: ResultRelay = inbound.message
        if relay.shop_id not in self.ctx.keys:
            return
        await self._judge(relay.shop_id, relay.order_id, relay.outcome, relay.amount,
                          relay.shop_authenticator, "relayed", inbound.opened.envelope.id)

    async def _judge(self, shop_id: str, order_id: str, outcome: str, amount: Money,
                     tag: bytes, via: str, msg_id: str) -> None:
        order = await self.db.get(shop_id, order_id)
        if order is None:
            await self.ctx.audit("unknown-order", join_key(shop_id, order_id),
                                 f"{via} result for an order this shop does not hold",
                                 sender=shop_id)
            return
        mac_key = bytes.fromhex(self.ctx.actor_keys(shop_id).secrets["settlement_mac"])
        verdict = judge_result(mac_key, shop_id, order_id, order.amount, outcome, amount, tag)
        await self._record(order, verdict, outcome, via, msg_id)

    # 4. Emb. 3 (C22–C26): ask the settlement server's result history until it has an outcome;
    # in VIA_TERMINAL mode, when the terminal has not relayed the result in time.
    async def poll_due(self) -> None:
        now = self.ctx.clock.now_ms()
        due = await self.db.due_inquiries(now, INQUIRY_BATCH)
        for asked in await self.db.claim_inquiries(inquiries.plan(due, now, self.poll)):
            order = asked.order
            key = join_key(order.shop_id, order.order_id)
            await self.ctx.emit(INQUIRIES, ResultInquiry(order.shop_id, order.order_id), key,
                                sender=order.shop_id, trace_id=order.trace_id or None)
            if asked.next_poll_ms is None:
                await self.ctx.audit("poll-limit", key,
                                     f"no result after {order.polls} inquiries; polling stops",
                                     sender=order.shop_id)

    async def on_inquiry_answer(self, inbound: Inbound) -> None:
        answer: InquiryAnswer = inbound.message
        key = join_key(answer.shop_id, answer.order_id)
        if answer.shop_id not in self.ctx.keys:
            return
        order = await self.db.get(answer.shop_id, answer.order_id)
        if order is None:
            return  # not ours
        verdict = judge_answer(order.amount, answer.outcome, answer.amount)
        if order.final and (verdict is None or not verdict.final):
            return  # an answer to an inquiry made before the result was known
        if verdict is None:
            if answer.outcome == "DENIED":
                await self.ctx.audit("inquiry-denied", key, "the settlement server refused "
                                     "this shop's inquiry", sender=answer.shop_id)
            return  # no outcome yet: the timer asks again
        await self._record(order, verdict, answer.outcome, "inquiry", inbound.opened.envelope.id)

    # The verdict: PAID ships, NOT_PAID cancels ([0053]); a bad result changes nothing.
    async def _record(self, order: Order, verdict: Verdict, outcome: str, via: str,
                      msg_id: str) -> None:
        key = join_key(order.shop_id, order.order_id)
        if verdict.status == RESULT_REJECTED:
            await self.ctx.audit("forged-result", key, f"{via} result rejected: "
                                 f"{verdict.detail}", sender=order.shop_id)
            if not order.final:
                await self._status(order.shop_id, order.order_id, order.session,
                                   RESULT_REJECTED, outcome, verdict.detail)
            return
        if await self.db.finalise(order.shop_id, order.order_id, verdict.status, outcome,
                                  by=msg_id):
            log.info("order %s of shop %s: %s (%s via %s)%s", order.order_id, order.shop_id,
                     verdict.status, outcome, via,
                     "; shipping" if verdict.status == "PAID" else "")
            await self._status(order.shop_id, order.order_id, order.session, verdict.status,
                               outcome, verdict.detail)

    async def _status(self, shop_id: str, order_id: str, session: str, status: str,
                      outcome: str = "", detail: str = "") -> None:
        await self.ctx.emit(ORDER_STATUS, OrderStatus(
            shop_id, order_id, session, status, outcome, detail,  # type: ignore[arg-type]
        ), join_key(shop_id, order_id), sender=shop_id)


Handler = Callable[[Inbound], Awaitable[None]]


def register(ctx: AgentContext, statement: Statement = HONEST) -> None:
    """Declare the shop's consumers and its result-inquiry timer. ``statement`` is what the
    1st request states (honest; a simulator may pass a dishonest one)."""
    s = ctx.settings
    # VIA_TERMINAL inquiries go on as long as the settlement history can answer.
    shop = Shop(ctx, OrderDB(s.data_dir / "shop.sqlite", synchronous=s.sqlite_synchronous),
                PollPolicy.from_env(give_up_ms=s.t_first_ms + s.t_history_ms), statement)
    ctx.handle(ORDER_REQUESTS, shop.on_order_request, types=(OrderRequest,),
               senders=PLACERS)
    ctx.handle(FIRST_ACKS, shop.on_first_accepted, types=(FirstAccepted,),
               senders=("settlement",))
    ctx.handle(RESULTS, shop.on_payment_result, types=(PaymentResult,), senders=("settlement",))
    ctx.handle(RELAYED, shop.on_relayed_result, types=(ResultRelay,), senders=ORDER_SENDERS)
    ctx.handle(ANSWERS, shop.on_inquiry_answer, types=(InquiryAnswer,),
               senders=("settlement",))

    @ctx.every(shop.poll.timer_interval_s(ctx.settings.timer_interval_s))
    async def result_inquiries() -> None:
        try:
            await shop.poll_due()
        except Exception:
            log.exception("shop: result inquiries failed; the next tick retries")

    @ctx.on_stop
    async def close_db() -> None:
        await shop.db.close()

    # Seeds 000/001: the payment processing section (④→⑤) and the HTTP front (①②).
    carts = procedure.register(ctx, shop.db, shop.catalogues)
    carrier.register(ctx, shop.db)  # ⑪ wallet → gateway, ⑫ gateway → wallet
    shop_http.register(ctx, carts, shop.catalogues)

