"""The shop's payment processing section 52 (seeds 000/001 ④→⑤, claim 1, [d:157, 190-192]).

Protocol, top to bottom:

1. ④  the relay's redirecting section forwards the terminal's final-payment press
      (``ProcedureRequest`` on ``kessai.relay.procedure-requests``; only the relay may send it).
2.    the shop prices the cart its HTTP front kept (①), names the order after the transaction
      id (so a redelivered request names the same order) and records it in the order DB as
      awaiting payment; the wallet's payment request and the gateway's approval pass through
      the shop later (⑪, ⑫) and settle it.
3. ⑤  the payment information, with the amount and the wallet servers this shop designates
      ([d:302], R9), goes to the relay on ``kessai.relay.payment-information`` — never to the
      terminal (claims 1–3, R3). A cart that cannot be priced gets ``NOT_PAID`` on
      ``kessai.order-status`` under the transaction id, so the relay can tell the terminal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agents.shop import catalogue, pricing
from agents.shop.carts import CartDB
from agents.shop.catalogue import Catalogue
from agents.shop.orders import AWAITING_PAYMENT, Order, OrderDB
from kessai.authenticators import join_key
from kessai.errors import ConfigError, KessaiError
from kessai.runtime import AgentContext, Inbound
from schemas.relay import PaymentInformation, ProcedureRequest
from schemas.v1 import OrderContent, OrderStatus

log = logging.getLogger("kessai.shop")

PROCEDURE_REQUESTS = "kessai.relay.procedure-requests"
PAYMENT_INFORMATION = "kessai.relay.payment-information"
ORDER_STATUS = "kessai.order-status"
MAX_ID_ATTEMPTS = 8


def designated_wallets(raw: str, shops: Sequence[str], known: Sequence[str]
                       ) -> dict[str, list[str]]:
    """The wallet servers each of ``shops`` designates ([d:302]), from ``KESSAI_SHOP_WALLETS``.

    Format ``shop-1=wallet-a,wallet-b;shop-2=wallet-a``; a shop not named designates every
    wallet server ``known`` (the key set's).

    Raises:
        ConfigError: a malformed entry, or a wallet server that does not exist.
    """
    out = {shop: list(known) for shop in shops}
    for entry in filter(None, (e.strip() for e in raw.split(";"))):
        shop, sep, wallets = entry.partition("=")
        names = [w.strip() for w in wallets.split(",") if w.strip()]
        if not sep or not shop.strip() or not names:
            raise ConfigError(f"KESSAI_SHOP_WALLETS entry {entry!r} must look like "
                              "shop-1=wallet-a,wallet-b")
        unknown = [w for w in names if w not in known]
        if unknown:
            raise ConfigError(f"KESSAI_SHOP_WALLETS names unknown wallet server(s) "
                              f"{', '.join(unknown)}; known: {', '.join(known)}")
        out[shop.strip()] = names
    return out


@dataclass
class PaymentProcessing:
    ctx: AgentContext
    orders: OrderDB
    carts: CartDB
    wallets: dict[str, list[str]] = field(default_factory=dict)  # a shop not named: every one
    catalogues: Mapping[str, Catalogue] = field(default_factory=dict)  # default: key files'

    def __post_init__(self) -> None:
        self.catalogues = self.catalogues or catalogue.of_shops(self.ctx.keys)

    # 1. ④ the procedure request, redirected by the relay.
    async def on_procedure_request(self, inbound: Inbound) -> None:
        req: ProcedureRequest = inbound.message
        where = f"txn:{req.txn_id}"
        if req.shop_id not in self.ctx.keys:
            await self.ctx.audit("unknown-shop", where,
                                 f"procedure request for shop {req.shop_id!r}, not served here")
            return
        if req.flow != "set-wallet":
            # The two-sided flow reaches the shop as an order request (M1), not this way.
            await self.ctx.audit("unexpected-flow", where, f"procedure request for flow "
                                 f"{req.flow!r} ignored", sender=req.shop_id)
            return

        # 2. price the cart the HTTP front kept.
        items = await self.carts.get(req.shop_id, req.cart_id)
        try:
            if items is None:
                raise pricing.OrderRejected("the shop has no such cart")
            content = pricing.price(items, self.catalogues[req.shop_id])
        except pricing.OrderRejected as exc:
            log.info("shop %s rejects procedure %s: %s", req.shop_id, req.txn_id, exc)
            await self.ctx.emit(ORDER_STATUS, OrderStatus(
                req.shop_id, "", req.txn_id, "NOT_PAID", "REJECTED", str(exc)),
                req.txn_id, sender=req.shop_id)
            return
        order = await self._record(req, content)

        # 3. ⑤ the payment information, to the relay only.
        info = PaymentInformation(
            txn_id=req.txn_id, shop_id=req.shop_id, order_id=order.order_id,
            content=order.content, amount=order.content.amount,
            usable_wallets=list(self.wallets.get(req.shop_id)
                                or self.ctx.registry.actors_of("wallet")))
        await self.ctx.emit(PAYMENT_INFORMATION, info, req.txn_id, sender=req.shop_id)
        await self.ctx.emit(ORDER_STATUS, OrderStatus(
            req.shop_id, order.order_id, req.txn_id, AWAITING_PAYMENT),
            join_key(req.shop_id, order.order_id), sender=req.shop_id)

    async def _record(self, req: ProcedureRequest, content: OrderContent) -> Order:
        """The order for this transaction: created once, found again on redelivery."""
        source = f"txn:{req.txn_id}"
        now = self.ctx.clock.now_ms()
        for attempt in range(MAX_ID_ATTEMPTS):
            ref = pricing.order_id_for(f"{req.shop_id}/{source}", attempt)
            order = await self.orders.add(Order(
                shop_id=req.shop_id, request_ref=ref, order_id=ref, session=req.txn_id,
                user_id=req.user_id, result_mode="VIA_TERMINAL", content=content,
                amount=content.amount, status=AWAITING_PAYMENT, source_id=source), now)
            if order is not None and order.source_id == source:
                return order
        raise KessaiError(f"no free order id for transaction {req.txn_id} after "
                          f"{MAX_ID_ATTEMPTS} attempts")




def register(ctx: AgentContext, orders: OrderDB,
             catalogues: Mapping[str, Catalogue]) -> CartDB:
    """Attach the payment processing section; returns the cart DB the HTTP front fills."""
    carts = CartDB(ctx.settings.data_dir / "shop.sqlite",
                   synchronous=ctx.settings.sqlite_synchronous)
    wallets = designated_wallets(os.environ.get("KESSAI_SHOP_WALLETS", ""), list(ctx.keys),
                                 ctx.registry.actors_of("wallet"))
    section = PaymentProcessing(ctx, orders, carts, wallets, catalogues)
    ctx.handle(PROCEDURE_REQUESTS, section.on_procedure_request, types=(ProcedureRequest,),
               senders=("relay",))
    return carts
