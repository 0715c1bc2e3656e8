"""The web shop's page (seed 002 V3, Fig. 20): a person picks goods, types their user id at
checkout, confirms on their phone (woken by the gateway), and the page shows the completion.

Served by the web shop worker (``KESSAI_WEBSHOP_PORT``, default 8490, loopback). Prices come
from the shop's own catalogue, never from the browser; the tax rate is the shop's setting
(``tax_percent`` in its key file, 10 by default [X]). Checkout becomes a ``WebOrder`` from the
shop itself, so the order is taken in a stream event like any other input. Nothing a card
could be typed into exists here: the card number never reaches the web shop.
"""

from __future__ import annotations

import html
import os
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kessai import http
from kessai.errors import ConfigError
from kessai.runtime import AgentContext
from schemas.wakeup import SaleItem, WebOrder

if TYPE_CHECKING:
    from agents.webshop.agent import WebShops

ORDERS = "kessai.webshop.orders"
DEFAULT_PORT = 8490
TAX_PERCENT = 10

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Web shop {shop_id}</title>
<style>body {{ font-family: sans-serif; max-width: 640px; margin: 20px auto; }}
td, th {{ padding: 4px 10px; text-align: left; }} #status {{ margin-top: 16px; padding: 10px;
background: #eef; }}</style></head>
<body><h2>Web shop {shop_id} (merchant {merchant})</h2>
<table><tr><th>Goods</th><th>Price</th><th>Quantity</th></tr>{rows}</table>
<p><label>Your user ID <input id="user-id"></label>
<button id="checkout">Pay with my phone</button></p>
<div id="status" data-status="browsing"><b id="status-name">browsing</b>
<p id="status-text">Choose your goods, then enter your user ID.</p></div>
<script>
const base = "/shop/{shop_id}";
function show(s) {{
  document.getElementById("status").dataset.status = s.status;
  document.getElementById("status-name").textContent = s.status;
  document.getElementById("status-text").textContent = s.text;
}}
async function follow(ref) {{
  const s = await (await fetch(base + "/order/" + ref + ".json")).json();
  show(s);
  if (!s.final) setTimeout(() => follow(ref), 300);
}}
document.getElementById("checkout").onclick = async () => {{
  const items = {{}};
  for (const i of document.querySelectorAll("input.qty")) items[i.name] = Number(i.value);
  const r = await fetch(base + "/checkout", {{method: "POST",
    headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{items, user_id: document.getElementById("user-id").value}})}});
  const body = await r.json();
  if (!r.ok) {{ show({{status: "refused", text: body.error}}); return; }}
  follow(body.order_ref);
}};
</script></body></html>
"""

FINAL = {"COMPLETED": "completed", "STOPPED": "stopped", "REJECTED": "rejected"}


def port_from_env() -> int:
    raw = os.environ.get("KESSAI_WEBSHOP_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"KESSAI_WEBSHOP_PORT must be a port number, not {raw!r}")
    return int(raw)


def cart(catalogue: dict[str, tuple[str, int]], wanted: Any) -> list[SaleItem] | str:
    """The priced goods of a checkout (codes and quantities from the browser), or why not."""
    if not isinstance(wanted, dict):
        return "items must map goods codes to quantities"
    items = []
    for code, qty in wanted.items():
        if code not in catalogue:
            return f"no goods {code!r} here"
        if not isinstance(qty, int) or isinstance(qty, bool) or not 0 <= qty <= 99:
            return f"quantity of {code} must be 0 to 99"
        if qty:
            name, price = catalogue[code]
            items.append(SaleItem(name, qty, price))
    return items or "the cart is empty"


def status(order: Any) -> dict[str, Any]:
    """What the page shows for an order (``None``: the checkout is on its way)."""
    if order is None:
        return {"status": "sent", "text": "Sending your order…", "final": False}
    if order.outcome in FINAL:
        if order.outcome == "COMPLETED":
            text = (f"Payment has now been completed. Transaction {order.transaction_number}"
                    + (f", method {order.method}." if order.method else "."))
        else:
            text = f"Payment {order.outcome.lower()}: {order.reason or 'no reason given'}."
        return {"status": FINAL[order.outcome], "text": text, "final": True,
                "transaction_number": order.transaction_number}
    if order.transaction_number:
        return {"status": "waiting_phone", "final": False,
                "transaction_number": order.transaction_number,
                "text": f"Transaction {order.transaction_number}: your phone is asked to "
                        f"confirm {order.total} {order.currency}."}
    return {"status": "ordered", "text": "Asking the payment gateway…", "final": False}


class Front:
    def __init__(self, ctx: AgentContext, shops: WebShops) -> None:
        self.ctx = ctx
        self.shops = shops

    def shop_id(self, request: web.Request) -> str:
        shop_id = request.match_info["shop_id"]
        if shop_id not in self.shops.merchants:
            raise web.HTTPNotFound(text="no such shop here")
        return shop_id

    async def index(self, request: web.Request) -> web.Response:
        links = "".join(f'<li><a href="/shop/{s}">{s}</a></li>' for s in self.shops.merchants)
        return web.Response(text=f"<!doctype html><ul>{links}</ul>", content_type="text/html")

    async def page(self, request: web.Request) -> web.Response:
        shop_id = self.shop_id(request)
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{price}</td><td><input class=\"qty\" "
            f"type=\"number\" min=\"0\" max=\"99\" value=\"0\" name=\"{html.escape(code)}\">"
            f"</td></tr>" for code, (name, price) in self.shops.catalogues[shop_id].items())
        return web.Response(text=PAGE.format(
            shop_id=html.escape(shop_id), merchant=html.escape(self.shops.merchants[shop_id]),
            rows=rows), content_type="text/html")

    async def checkout(self, request: web.Request) -> web.Response:
        shop_id = self.shop_id(request)
        try:
            form = await request.json()
        except ValueError:
            return web.json_response({"error": "send JSON"}, status=400)
        items = cart(self.shops.catalogues[shop_id], form.get("items"))
        user_id = str(form.get("user_id", "")).strip()
        if isinstance(items, str) or not user_id:
            return web.json_response({"error": items if isinstance(items, str)
                                      else "enter your user ID"}, status=400)
        order_ref = "web-" + uuid.uuid4().hex[:12]
        subtotal = sum(i.quantity * i.price for i in items)
        await self.ctx.emit(ORDERS, WebOrder(shop_id, order_ref, user_id, items,
                                             subtotal * self.shops.tax_percent[shop_id] // 100),
                            order_ref, key=shop_id, sender=shop_id)
        return web.json_response({"order_ref": order_ref})

    async def order(self, request: web.Request) -> web.Response:
        shop_id = self.shop_id(request)
        found = self.shops.load(shop_id).orders.get(request.match_info["order_ref"])
        return web.json_response(status(found))

    def app(self) -> web.Application:
        a = web.Application()
        a.router.add_get("/", self.index)
        a.router.add_get("/shop/{shop_id}", self.page)
        a.router.add_post("/shop/{shop_id}/checkout", self.checkout)
        a.router.add_get("/shop/{shop_id}/order/{order_ref}.json", self.order)
        return a


def register(ctx: AgentContext, shops: WebShops) -> None:
    async def nothing() -> None:
        return None

    http.serve(ctx, Front(ctx, shops).app(), "127.0.0.1", port_from_env(), "web shop", nothing)
