"""The shop's HTTP server 51 (seeds 000/001 ①②, claim 3, [d:182-188]): terminals browse the
shop directly, select products provisionally (a cart held by the shop, [d:184]) and get the
confirm-payment page, whose final-payment button posts to the **relay** (R2), never to the
shop. Payment information never goes out here (claims 1–3, R3).

Pages are small plain HTML, without cookies: the cart id and the terminal's profile travel in
the URLs and forms, as limited browsers need. Served by the shop worker on
``KESSAI_SHOP_HTTP_HOST:KESSAI_SHOP_HTTP_PORT`` (default 127.0.0.1:8450); the relay's address
is ``KESSAI_RELAY_URL`` (default ``http://127.0.0.1:$KESSAI_RELAY_PORT``, port 8460).
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from agents.shop import pricing
from agents.shop.carts import CartDB, added, new_cart_id
from agents.shop.catalogue import Catalogue
from kessai import http
from kessai.errors import ConfigError
from kessai.money import Money
from kessai.runtime import AgentContext
from schemas.v1 import OrderContent

log = logging.getLogger("kessai.shop")

DEFAULT_PORT = 8450
DEFAULT_PROFILE = "phone"


@dataclass(frozen=True)
class FrontConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    relay_url: str = "http://127.0.0.1:8460"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> FrontConfig:
        port = _port(env, "KESSAI_SHOP_HTTP_PORT", DEFAULT_PORT)
        relay_port = _port(env, "KESSAI_RELAY_PORT", 8460)
        return cls(host=env.get("KESSAI_SHOP_HTTP_HOST") or "127.0.0.1", port=port,
                   relay_url=(env.get("KESSAI_RELAY_URL")
                              or f"http://127.0.0.1:{relay_port}").rstrip("/"))


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name} must be a TCP port number, got {raw!r}")
    return int(raw)


# -- pages (pure) ---------------------------------------------------------------------------

def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _doc(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"</head><body><h1>{_e(title)}</h1>{body}</body></html>")


def _lines(content: OrderContent) -> str:
    rows = "".join(
        f"<tr><td>{_e(i.name)}</td><td>{_e(Money(i.unit_price, content.currency))}</td>"
        f"<td>{i.quantity}</td></tr>" for i in content.items)
    return (f"<table><tr><th>Product</th><th>Unit price</th><th>Qty</th></tr>{rows}</table>"
            f"<p>Tax {_e(Money(content.tax, content.currency))}</p>"
            f"<p id=\"total\">Total {_e(content.amount)}</p>")


def catalogue_page(shop_id: str, catalogue: Mapping[str, tuple[str, int]], cart_id: str,
                   profile: str) -> str:
    """① the product list; each product can be added to the cart."""
    rows = "".join(
        f"<li>{_e(name)} {_e(Money(price, pricing.CURRENCY))}"
        f"<form method=\"post\" action=\"/{_e(shop_id)}/cart\">"
        f"<input type=\"hidden\" name=\"product\" value=\"{_e(code)}\">"
        f"<input type=\"hidden\" name=\"cart\" value=\"{_e(cart_id)}\">"
        f"<input type=\"hidden\" name=\"profile\" value=\"{_e(profile)}\">"
        f"<input name=\"qty\" value=\"1\" size=\"2\">"
        f"<button type=\"submit\" id=\"add-{_e(code)}\">Add</button></form></li>"
        for code, (name, price) in catalogue.items())
    cart = (f"<p><a id=\"cart\" href=\"/{_e(shop_id)}/cart?"
            f"{_e(urlencode({'cart': cart_id, 'profile': profile}))}\">Cart</a></p>"
            if cart_id else "")
    return _doc(f"{shop_id}: products", f"<ul>{rows}</ul>{cart}")


def cart_page(shop_id: str, cart_id: str, content: OrderContent, profile: str) -> str:
    """The provisionally selected products, with the way to the confirm page."""
    q = _e(urlencode({"cart": cart_id, "profile": profile}))
    return _doc(f"{shop_id}: cart", _lines(content)
                + f"<p><a id=\"more\" href=\"/{_e(shop_id)}/?{q}\">More products</a> "
                f"<a id=\"confirm\" href=\"/{_e(shop_id)}/confirm?{q}\">Confirm</a></p>")


def confirm_page(shop_id: str, cart_id: str, content: OrderContent, profile: str,
                 relay_url: str) -> str:
    """② the confirm-payment page: the list and total, and the final-payment button whose
    URL is the relay's ([d:186-188], R2). ``items`` rides along for the two-sided flow, where
    the relay places the order (M1) on the terminal's behalf; ``user`` is optional (a phone's
    stored setting, for the relay's preset wallet, R36)."""
    items = ",".join(f"{i.code}:{i.quantity}" for i in content.items)
    hidden = "".join(f"<input type=\"hidden\" name=\"{k}\" value=\"{_e(v)}\">" for k, v in
                     (("shop", shop_id), ("cart", cart_id), ("profile", profile),
                      ("items", items)))
    form = (f"<form method=\"post\" action=\"{_e(relay_url)}/pay\">{hidden}"
            "<p>User (optional) <input name=\"user\" id=\"user\"></p>"
            "<button type=\"submit\" name=\"flow\" value=\"set-wallet\" id=\"pay\">"
            "Pay with my wallet</button> "
            "<button type=\"submit\" name=\"flow\" value=\"two-sided\" id=\"pay-two-sided\">"
            "Pay by card (two-sided)</button></form>")
    return _doc(f"{shop_id}: confirm payment", _lines(content) + form)


def error_page(message: str) -> str:
    return _doc("Shop error", f"<p id=\"error\">{_e(message)}</p>")


# -- the HTTP shell -------------------------------------------------------------------------

@dataclass
class ShopFront:
    ctx: AgentContext
    carts: CartDB
    config: FrontConfig
    catalogues: Mapping[str, Catalogue]

    def _shop(self, request: web.Request) -> str:
        shop_id = request.match_info["shop"]
        if shop_id not in self.ctx.keys:
            raise _page(404, error_page(f"no shop {shop_id!r} here"))
        return shop_id

    @staticmethod
    def _profile(values: Mapping[str, str]) -> str:
        return (values.get("profile") or DEFAULT_PROFILE)[:32]

    async def index(self, request: web.Request) -> web.Response:
        links = "".join(f"<li><a href=\"/{_e(s)}/\">{_e(s)}</a></li>" for s in self.ctx.keys)
        return _html(_doc("Shops", f"<ul>{links}</ul>"))

    async def products(self, request: web.Request) -> web.Response:
        shop_id = self._shop(request)
        return _html(catalogue_page(shop_id, self.catalogues[shop_id],
                                    request.query.get("cart", ""),
                                    self._profile(request.query)))

    async def add_to_cart(self, request: web.Request) -> web.Response:
        shop_id = self._shop(request)
        form = await request.post()
        values = {k: str(v) for k, v in form.items()}
        profile = self._profile(values)
        code = values.get("product", "")
        if code not in self.catalogues[shop_id]:
            raise _page(400, error_page("unknown product"))
        qty = values.get("qty", "1").strip()
        cart_id = values.get("cart", "")
        items: list[list[Any]] = []
        if cart_id:
            found = await self.carts.get(shop_id, cart_id)
            if found is None:
                raise _page(404, error_page("no such cart; start again from the products"))
            items = found
        else:
            cart_id = new_cart_id()
        try:
            items = added(items, code, int(qty) if qty.isdigit() else 0)
        except ValueError as exc:
            raise _page(400, error_page(str(exc))) from None
        await self.carts.put(shop_id, cart_id, items, self.ctx.clock.now_ms())
        raise web.HTTPSeeOther(f"/{shop_id}/cart?" + urlencode({"cart": cart_id,
                                                                 "profile": profile}))

    async def _content(self, shop_id: str, cart_id: str) -> OrderContent:
        items = await self.carts.get(shop_id, cart_id) if cart_id else None
        if not items:
            raise _page(404, error_page("no such cart; start again from the products"))
        try:
            return pricing.price(items, self.catalogues[shop_id])
        except pricing.OrderRejected as exc:
            raise _page(400, error_page(str(exc))) from None

    async def cart(self, request: web.Request) -> web.Response:
        shop_id = self._shop(request)
        cart_id = request.query.get("cart", "")
        content = await self._content(shop_id, cart_id)
        return _html(cart_page(shop_id, cart_id, content, self._profile(request.query)))

    async def confirm(self, request: web.Request) -> web.Response:
        shop_id = self._shop(request)
        cart_id = request.query.get("cart", "")
        content = await self._content(shop_id, cart_id)
        return _html(confirm_page(shop_id, cart_id, content, self._profile(request.query),
                                  self.config.relay_url))

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/", self.index),
            web.get("/{shop}/", self.products),
            web.post("/{shop}/cart", self.add_to_cart),
            web.get("/{shop}/cart", self.cart),
            web.get("/{shop}/confirm", self.confirm),
        ])
        return app


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _page(status: int, body: str) -> web.HTTPException:
    cls = web.HTTPNotFound if status == 404 else web.HTTPBadRequest
    return cls(text=body, content_type="text/html")


def register(ctx: AgentContext, carts: CartDB, catalogues: Mapping[str, Catalogue]) -> None:
    """Serve the shop's HTTP front from the shop worker; stop it (and the carts) on shutdown."""
    config = FrontConfig.from_env()
    front = ShopFront(ctx, carts, config, catalogues)
    http.serve(ctx, front.app(), config.host, config.port, "shop HTTP front", carts.close)
