"""Web shop worker of seed 002 V3 (web server 130, Fig. 20): every web shop of the key set
(``webshop-<n>``), each with its merchant code and catalogue (decisions in ``orders``).

1. ``WebOrder`` at checkout (the customer's goods and typed user id, from the shop's page or
   the operator) → one ``TxnNumberRequest`` to the gateway, as a POS sends it (G10, P3).
2. ``TxnNumber`` stored with the order; ``PosCompletion`` (over network 10A) stored and shown:
   ``WebOrderResult`` on ``kessai.webshop.results``, and on the shop's page.
The page (``http``) is served by this worker; the card number never reaches it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, replace

import msgpack

from agents.webshop import http as webshop_http
from agents.webshop import orders
from kessai.errors import ConfigError
from kessai.runtime import AgentContext, Inbound
from schemas.wakeup import PosCompletion, TxnNumber, WebOrder, WebOrderResult

log = logging.getLogger("kessai.webshop")

KIND = "webshop"
ORDERS = "kessai.webshop.orders"
TXN_NUMBERS = "kessai.webshop.txn-numbers"
COMPLETIONS = "kessai.webshop.completions"
RESULTS = "kessai.webshop.results"
TXN_REQUESTS = "kessai.paygate.txn-requests"
SEEN_KEPT = 32


@dataclass
class WebShops:
    ctx: AgentContext
    merchants: dict[str, str]  # shop id → merchant code
    catalogues: dict[str, dict[str, tuple[str, int]]]  # shop id → code → (name, price)
    table: MutableMapping[bytes, bytes]
    tax_percent: dict[str, int]  # shop id → tax rate [X]

    def load(self, shop_id: str) -> orders.Shop:
        raw = self.table.get(shop_id.encode())
        return orders.Shop.from_wire(msgpack.unpackb(raw)) if raw else orders.Shop()

    async def handle(self, inbound: Inbound) -> None:
        msg = inbound.message
        shop_id = msg.shop_id if isinstance(msg, WebOrder) else msg.pos_id
        key = inbound.key.decode("utf-8", "replace") if inbound.key else ""
        if shop_id not in self.merchants or key != shop_id or (
                inbound.sender.startswith("webshop") and inbound.sender != shop_id):
            # a shop's page speaks only for that shop
            await self.ctx.dead_letter("unknown_webshop", f"no web shop {shop_id} here "
                                                          f"(key {key})", inbound.topic,
                                       inbound.partition, inbound.offset, inbound.raw,
                                       inbound.key)
            return
        state = self.load(shop_id)
        msg_id = inbound.opened.envelope.id
        if msg_id in state.seen:
            return  # a redelivery: applied already
        if isinstance(msg, WebOrder):
            step = orders.on_order(shop_id, self.merchants[shop_id], state, msg)
        elif isinstance(msg, TxnNumber):
            step = orders.on_txn_number(state, msg)
        else:
            step = orders.on_completion(shop_id, state, msg)
        for out in step.out:
            if isinstance(out, WebOrderResult):
                log.info("webshop %s: order %s %s", shop_id, out.order_ref, out.outcome)
                await self.ctx.emit(RESULTS, out, out.transaction_number or out.order_ref,
                                    key=shop_id, sender=shop_id)
            else:
                await self.ctx.emit(TXN_REQUESTS, out, out.sale_ref, key=out.user_id,
                                    sender=shop_id)
        new = step.state
        self.table[shop_id.encode()] = msgpack.packb(
            replace(new, seen=[*new.seen, msg_id][-SEEN_KEPT:]).to_wire(), use_bin_type=True)


def register(ctx: AgentContext) -> None:
    merchants: dict[str, str] = {}
    catalogues: dict[str, dict[str, tuple[str, int]]] = {}
    for actor in ctx.keys:
        secrets = ctx.actor_keys(actor).secrets
        if "merchant_code" not in secrets:
            raise ConfigError(f"{actor}'s key file has no merchant code; recreate the key set "
                              f"with 'kessai keys init --force {ctx.settings.keys_dir}'")
        merchants[actor] = str(secrets["merchant_code"])
        catalogues[actor] = {code: (str(n), int(p))
                             for code, (n, p) in dict(secrets.get("catalogue", {})).items()}
    tax = {a: int(ctx.actor_keys(a).secrets.get("tax_percent", webshop_http.TAX_PERCENT))
           for a in ctx.keys}
    shops = WebShops(ctx, merchants, catalogues, ctx.table("webshop-orders", partitions=4),
                     tax)
    ctx.handle(ORDERS, shops.handle, types=(WebOrder,), senders=("operator", "webshop"))
    ctx.handle(TXN_NUMBERS, shops.handle, types=(TxnNumber,), senders=("paygate",))
    ctx.handle(COMPLETIONS, shops.handle, types=(PosCompletion,), senders=("paygate",))
    if os.environ.get("KESSAI_WEBSHOP_HTTP", "1") == "1":
        webshop_http.register(ctx, shops)  # the shop's page for a person (browser)

