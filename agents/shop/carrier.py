"""The shop as the SET merchant between wallet and payment gateway (seeds 000/001 ⑪, ⑫).

"the payment request ... to the payment GW 70 through the shop server 50" and the approval
response back "through the shop server" ([d:204-206], claim 1). The shop only carries:

1. ⑪  a wallet's ``SetPaymentRequest`` (``kessai.shop.payment-requests``) → the wallet's
      signed envelope, unchanged, in a ``ForwardedPaymentRequest`` to the gateway
      (``kessai.gateway.payment-requests``), signed as the shop the request names. The card
      inside is sealed to the gateway: the shop cannot read it (R14, R40).
2. ⑫  the gateway's ``ApprovalResponse`` (``kessai.shop.approvals``) → its signed envelope,
      unchanged, in a ``ForwardedApproval`` to the wallet (``kessai.wallet.inbox``). The shop
      cannot forge it: the wallet checks the gateway's signature.

Forwarding is stateless, so a redelivered record is forwarded again; the gateway and the
wallet are idempotent per transaction. The gateway's signed approval also settles the shop's
own order: PAID only for an approval of exactly the order's amount (ship only then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agents.shop.orders import OrderDB
from kessai import envelope
from kessai.authenticators import join_key
from kessai.handlers import actor_kind
from kessai.runtime import AgentContext, Inbound
from schemas.relay import (
    ApprovalResponse,
    ForwardedApproval,
    ForwardedPaymentRequest,
    SetPaymentRequest,
)
from schemas.v1 import OrderStatus

log = logging.getLogger("kessai.shop")

PAYMENT_REQUESTS = "kessai.shop.payment-requests"
GATEWAY_REQUESTS = "kessai.gateway.payment-requests"
APPROVALS = "kessai.shop.approvals"
WALLET_INBOX = "kessai.wallet.inbox"
ORDER_STATUS = "kessai.order-status"
GATEWAY = "gateway"


@dataclass
class Carrier:
    ctx: AgentContext
    orders: OrderDB | None = None

    # 1. ⑪ wallet → shop → gateway.
    async def on_payment_request(self, inbound: Inbound) -> None:
        req = inbound.message
        if not isinstance(req, SetPaymentRequest) or actor_kind(inbound.sender) != "wallet" \
                or inbound.sender != req.wallet_id:
            await self.ctx.audit("unexpected-sender", _txn(inbound),
                                 f"{inbound.opened.envelope.type} from {inbound.sender!r} "
                                 "is not a wallet's payment request; not forwarded")
            return
        if req.shop_id not in self.ctx.keys:
            await self.ctx.audit("unknown-shop", req.txn_id,
                                 f"payment request for shop {req.shop_id!r}, not served here")
            return
        log.info("shop %s: payment request for txn %s → gateway", req.shop_id, req.txn_id)
        await self.ctx.emit(GATEWAY_REQUESTS, ForwardedPaymentRequest(
            req.txn_id, envelope.encode(inbound.opened.envelope)), req.txn_id,
            sender=req.shop_id)

    # 2. ⑫ gateway → shop → wallet.
    async def on_approval(self, inbound: Inbound) -> None:
        resp: ApprovalResponse = inbound.message
        if resp.shop_id not in self.ctx.keys:
            await self.ctx.audit("unknown-shop", resp.txn_id,
                                 f"approval for shop {resp.shop_id!r}, not served here")
            return
        log.info("shop %s: approval response for txn %s → wallet %s", resp.shop_id,
                 resp.txn_id, resp.wallet_id)
        await self.ctx.emit(WALLET_INBOX, ForwardedApproval(
            resp.txn_id, resp.wallet_id, envelope.encode(inbound.opened.envelope)),
            resp.txn_id, sender=resp.shop_id)
        await self._settle_order(resp)

    async def _settle_order(self, resp: ApprovalResponse) -> None:
        if self.orders is None:
            return
        order = await self.orders.by_session(resp.shop_id, resp.txn_id)
        if order is None:
            await self.ctx.audit("unknown-order", resp.txn_id,
                                 "approval for a transaction the shop has no order for",
                                 sender=resp.shop_id)
            return
        paid = resp.approved and resp.amount == order.amount
        status = "PAID" if paid else "NOT_PAID"
        outcome = "APPROVED" if resp.approved else "DECLINED"
        detail = "" if paid or not resp.approved else "approved amount differs from the order"
        if await self.orders.finalise(resp.shop_id, order.order_id, status, outcome):
            await self.ctx.emit(ORDER_STATUS, OrderStatus(
                resp.shop_id, order.order_id, resp.txn_id, status, outcome, detail),
                join_key(resp.shop_id, order.order_id), sender=resp.shop_id)


def _txn(inbound: Inbound) -> str:
    return inbound.opened.envelope.correlation_id


def register(ctx: AgentContext, orders: OrderDB | None = None) -> Carrier:
    """Declare the two carrying handlers."""
    carrier = Carrier(ctx, orders)
    ctx.handle(PAYMENT_REQUESTS, carrier.on_payment_request, types=(SetPaymentRequest,),
               senders=("wallet",))
    ctx.handle(APPROVALS, carrier.on_approval, types=(ApprovalResponse,), senders=("gateway",))
    return carrier
