"""The relay's HTTP server 43 (the "first communicating section", claim 8, R7): what limited
terminals talk to. Each path is one terminal request of the relay's flows; every answer is a
page converted for the terminal's profile, and every exchange is recorded on
``kessai.relay.terminal-traffic`` (path, page kind, sizes — never form values).

=================  ======================================================================
``POST /pay``      ③ the final-payment button (shop, cart, profile, optional user; or
                   ``flow=two-sided`` with user and items)
``GET /page``      page ``p`` (1-based) of divided contents (R24)
``POST /select-wallet``  FIG. 7 (B)
``POST /login``    ⑨
``POST /conditions``     card brand and payment method
``POST /approve``  ⑪' (keep-alive: the progress page after the preset period, claim 10)
``/inquire``       GET or POST: the held result, or the progress page again (claim 11, R31)
``POST /confirm``  the two-sided flow's card form (M7)
``/enrol``         GET: the registration form; POST: the registration (claims 12–13)
=================  ======================================================================

The session string comes in the form field or query parameter ``s`` (a hidden string in every
page, FIG. 6 ②), or, for terminals that keep cookies, in the ``kessai-relay`` cookie.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agents.relay import flow
from agents.relay.config import RelayConfig
from agents.relay.core import Refused, View
from agents.relay.enrol import Enrolment
from agents.relay.profiles import UnknownProfile
from agents.relay.setwallet import Relay
from agents.relay.store import RelaySession
from agents.relay.twosided import TwoSided
from kessai import http
from kessai.runtime import AgentContext
from schemas.relay import TerminalTraffic

log = logging.getLogger("kessai.relay")

TRAFFIC = "kessai.relay.terminal-traffic"
COOKIE = "kessai-relay"
PAGE_HEADER = "X-Kessai-Page"  # what the page is (for tools; browsers ignore it)
_CART = re.compile(r"[A-Za-z0-9_-]{1,64}")

Work = Callable[[dict[str, str], int], Awaitable[View]]


@dataclass
class Front:
    relay: Relay
    two_sided: TwoSided
    enrolment: Enrolment

    @property
    def ctx(self) -> AgentContext:
        return self.relay.ctx

    # -- one exchange ------------------------------------------------------------------------

    async def _exchange(self, request: web.Request, work: Work) -> web.Response:
        started = self.ctx.clock.now_ms()
        values = {k: v for k, v in request.query.items()}
        if request.method == "POST":
            form = await request.post()
            values.update({k: v for k, v in form.items() if isinstance(v, str)})
        if "s" not in values and request.cookies.get(COOKIE):
            values["s"] = request.cookies[COOKIE]
        try:
            view = await work(values, started)
        except Refused as refused:
            view = refused.view
        except Exception as exc:
            # Never quote the exception: form values (a card, a password) may be in it.
            log.error("relay: %s %s failed: %s", request.method, request.path,
                      type(exc).__name__)
            await self._safe_audit("relay-failure", f"relay:{request.path}",
                                   f"{request.method} {request.path}: {type(exc).__name__}")
            view = self.relay.error_view(self.relay.fallback_profile(),
                                         "The relay could not handle this request. Nothing "
                                         "was sent twice; please try again.", status=500)
        await self._record(request, view)
        response = web.Response(text=view.html, status=view.status, content_type="text/html",
                                charset="utf-8", headers={"Cache-Control": "no-store",
                                                          PAGE_HEADER: view.kind})
        session = view.session
        if session is not None and self._keeps_cookies(session):
            response.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict")
        if request.transport is None or request.transport.is_closing():
            # R32: the payment goes on; the held result waits for the next inquiry.
            await self._safe_audit("terminal-gone", _where(session, request.path),
                                   "the terminal left before its page was sent; the session "
                                   "keeps its result for the next inquiry")
        return response

    def _keeps_cookies(self, session: RelaySession) -> bool:
        try:
            return self.relay.profile_of(session.profile).cookies
        except UnknownProfile:
            return False

    async def _record(self, request: web.Request, view: View) -> None:
        """One request and its page on the traffic topic, keyed by terminal session."""
        session = view.session
        sid = session.sid if session is not None else "-"
        txn = session.txn_id if session is not None else ""
        try:
            for direction, kind, size in (("request", request.path.strip("/"),
                                           request.content_length or 0),
                                          ("page", view.kind, view.size)):
                await self.ctx.emit(TRAFFIC, TerminalTraffic(
                    session=sid, direction=direction, path=request.path, kind=kind,
                    profile=view.profile, txn_id=txn, size=size), sid, sender="relay")
        except Exception as exc:
            log.warning("relay: terminal traffic not recorded: %s", type(exc).__name__)

    async def _safe_audit(self, kind: str, where: str, detail: str) -> None:
        try:
            await self.ctx.audit(kind, where, detail, sender="relay")
        except Exception as exc:
            log.warning("relay: audit event not written: %s", type(exc).__name__)

    async def _session(self, values: dict[str, str], path: str) -> RelaySession:
        token = values.get("s", "")
        if not token:
            raise Refused(self.relay.error_view(
                self.relay.fallback_profile(), "This page has no session. Please start the "
                "payment again from the shop.", status=400))
        return await self.relay.session_of(token[:300], path)

    # -- the paths ---------------------------------------------------------------------------

    async def pay(self, request: web.Request) -> web.Response:
        async def work(values: dict[str, str], started: int) -> View:
            try:
                prof = self.relay.profile_of(values.get("profile", "")[:32])
            except UnknownProfile as exc:
                return await self.relay.refuse_profile(exc, "/pay")
            shop_id = values.get("shop", "")
            if shop_id not in self.ctx.registry.actors_of("shop"):
                await self.ctx.audit("unknown-shop", "relay:/pay",
                                     f"final-payment press for shop {shop_id[:32]!r}")
                raise Refused(self.relay.error_view(prof, "The relay does not know that "
                                                    "shop.", status=400))
            user = values.get("user", "").strip()
            try:
                user = flow.user_from_form(user) if user else ""
            except flow.FormError as exc:
                raise Refused(self.relay.error_view(prof, str(exc), status=400)) from None
            chosen = values.get("flow") or "set-wallet"
            if chosen == "two-sided":
                if not user:
                    raise Refused(self.relay.error_view(
                        prof, "Type your user name to pay by card.", status=400))
                return await self.two_sided.pay(prof, shop_id, user, values.get("items", ""),
                                                started)
            if chosen != "set-wallet":
                raise Refused(self.relay.error_view(prof, "Unknown way to pay.", status=400))
            cart = values.get("cart", "")
            if not _CART.fullmatch(cart):
                raise Refused(self.relay.error_view(prof, "The shop's page did not name a "
                                                    "cart. Go back to the shop.", status=400))
            return await self.relay.pay(prof, shop_id, cart, user, started)

        return await self._exchange(request, work)

    def _on_session(self, path: str,
                    act: Callable[[RelaySession, dict[str, str], int], Awaitable[View]]
                    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            async def work(values: dict[str, str], started: int) -> View:
                return await act(await self._session(values, path), values, started)

            return await self._exchange(request, work)

        return handle

    async def _page(self, s: RelaySession, v: dict[str, str], started: int) -> View:
        p = v.get("p", "1")
        return await self.relay.page(s, int(p) - 1 if p.isdigit() and len(p) < 4 else -1)

    async def _select(self, s: RelaySession, v: dict[str, str], started: int) -> View:
        return await self.relay.select_wallet(s, v.get("wallet", ""), started)

    async def _login(self, s: RelaySession, v: dict[str, str], started: int) -> View:
        return await self.relay.login(s, v.get("user_name", ""), v.get("password", ""),
                                      started)

    async def _conditions(self, s: RelaySession, v: dict[str, str], started: int) -> View:
        return await self.relay.conditions(s, v.get("brand", ""), v.get("method", ""), started)

    async def _approve(self, s: RelaySession, v: dict[str, str], started: int) -> View:
        return await self.relay.approve(s, started)

    async def _inquire(self, s: RelaySession, v: dict[str, str], started: int) -> View:
        return await self.relay.inquire(s)

    async def _confirm(self, s: RelaySession, v: dict[str, str], started: int) -> View:
        return await self.two_sided.confirm(s, v.get("card", ""), v.get("expiry", ""),
                                            v.get("password", ""), started)

    async def _enrol(self, s: RelaySession, v: dict[str, str], started: int) -> View:
        return await self.enrolment.register(
            s, v.get("user", ""), v.get("wallet", ""), v.get("brand", ""), v.get("card", ""),
            v.get("expiry", ""), v.get("password", ""), started)

    async def enrol_form(self, request: web.Request) -> web.Response:
        async def work(values: dict[str, str], started: int) -> View:
            try:
                prof = self.relay.profile_of(values.get("profile", "")[:32])
            except UnknownProfile as exc:
                return await self.relay.refuse_profile(exc, "/enrol")
            return await self.enrolment.form(prof)

        return await self._exchange(request, work)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes([
            web.post("/pay", self.pay),
            web.get("/page", self._on_session("/page", self._page)),
            web.post("/select-wallet", self._on_session("/select-wallet", self._select)),
            web.post("/login", self._on_session("/login", self._login)),
            web.post("/conditions", self._on_session("/conditions", self._conditions)),
            web.post("/approve", self._on_session("/approve", self._approve)),
            web.get("/inquire", self._on_session("/inquire", self._inquire)),
            web.post("/inquire", self._on_session("/inquire", self._inquire)),
            web.post("/confirm", self._on_session("/confirm", self._confirm)),
            web.get("/enrol", self.enrol_form),
            web.post("/enrol", self._on_session("/enrol", self._enrol)),
        ])
        return app


def _where(session: RelaySession | None, path: str) -> str:
    if session is None:
        return f"relay:{path}"
    return session.txn_id or f"relay:{session.sid}"


def register(ctx: AgentContext, front: Front, config: RelayConfig,
             on_stopped: Callable[[], Awaitable[Any]]) -> None:
    """Serve the front from the relay worker; stop it (then ``on_stopped``) on shutdown."""
    http.serve(ctx, front.app(), config.host, config.port, "relay HTTP server", on_stopped)
