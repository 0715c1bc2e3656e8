"""The relay's main flow (FIG. 3, seeds 000/001): a limited terminal pays with a server
wallet, the relay server 40 between them (docs/relay.md). Top to bottom, per terminal session:

1. ③④   the terminal presses the final-payment button, which points at the relay (``/pay``);
         the redirecting section sends the procedure request to the shop (claim 1, R4).
2. ⑤⑥   the shop's payment information comes to the relay, never to the terminal (claims 2–3,
         R3); the relay transfers the shop's signed envelope unchanged (R5) to the user's
         pre-set wallet or the only one designated (R36), or shows the wallet-selection page
         (FIG. 7 A, claim 14, R34) and transfers it to the designated wallet chosen (B, R35).
3. ⑦⑧   the wallet's contents come back with its session cookie; the relay keeps the cookie
         (FIG. 6 ①) and sends the terminal converted pages carrying a hidden session string
         instead (②, claims 4–7, R19–R28).
4. ⑨⑩   the login: the password is sealed to the wallet the moment it arrives (R43) and the
         cookie is restored (FIG. 6 ③, R29); the conditions go the same way ([d:202]).
5. ⑪'   the final approval goes to the wallet once (claims 15–16, R6, R33); if the result
         takes longer than the preset period the terminal gets the progress page and asks
         again, by button or by itself (claims 10–11, R30–R31).
6. ⑬⑭   the result is converted and held; whoever asks with the session string later —
         after a dropped call too — gets it (R32).

The handlers here run behind the runtime's door, declared in ``agents.relay.agent``: the
payment information and order status only from the shop they name, the contents only from the
wallet server they name.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product

from agents.relay import flow, sessions
from agents.relay.core import Refused, RelayCore, View
from agents.relay.pages import Action, Input, wallet_selection_page
from agents.relay.profiles import Profile
from agents.relay.store import RelaySession
from agents.relay.templates import MissingItem, extract
from kessai import crypto
from kessai.runtime import Inbound
from protocols.sealed import wallet_password_context
from schemas.relay import (
    PaymentInformation,
    ProcedureRequest,
    WalletConditions,
    WalletContents,
    WalletFinalApproval,
    WalletLogin,
    WalletPaymentInformation,
)
from schemas.v1 import OrderStatus

log = logging.getLogger("kessai.relay")

PROCEDURE_REQUESTS = "kessai.relay.procedure-requests"
WALLET_INBOX = "kessai.wallet.inbox"

LOGIN_ACTION = Action("Log in", "/login", inputs=(
    Input("user_name", "User name"), Input("password", "Password", "password")))
APPROVE_ACTION = Action("Approve payment", "/approve")


def wallet_actions(kind: str, html: str) -> list[Action]:
    """The actions a wallet page offers the terminal, all pointing at the relay (R26)."""
    if kind in ("login", "login-failed"):
        return [LOGIN_ACTION]
    if kind == "conditions":
        return condition_actions(html)
    if kind == "confirming":
        return [APPROVE_ACTION]
    return []


def condition_actions(html: str) -> list[Action]:
    """One button per card brand and payment method the wallet offers (``<Brand>``,
    ``<Method>`` items, [d:202]): a limited terminal presses, it does not type."""
    brands = _all_items(html, "Brand")
    methods = _all_items(html, "Method") or ["lump-sum"]
    return [Action(f"{b} {m}", "/conditions", fields={"brand": b, "method": m})
            for b, m in product(brands, methods)]


def _all_items(html: str, name: str) -> list[str]:
    # templates.extract keeps the first occurrence of a name; conditions list several.
    out: list[str] = []
    for chunk in html.split(f"<{name}>")[1:]:
        value = extract(f"<{name}>{chunk.split(f'</{name}>')[0]}</{name}>").get(name)
        if isinstance(value, str) and value and value not in out:
            out.append(value)
    return out


@dataclass
class Relay(RelayCore):
    presets: Mapping[str, str] | None = None

    def preset_wallets(self) -> Mapping[str, str]:
        if self.presets is None:
            return self.ctx.actor_keys("relay").secrets.get("preset_wallet", {})
        return self.presets

    def known_wallets(self) -> list[str]:
        return [w for w in self.ctx.registry.actors_of("wallet") if w in self.ctx.registry.sealing]

    # 1. ③④ the final-payment button: the procedure request, redirected to the shop.
    async def pay(self, prof: Profile, shop_id: str, cart_id: str, user_id: str,
                  started_ms: int) -> View:
        session = await self.new_session("set-wallet", prof, txn_id=_txn_id(),
                                         shop_id=shop_id, cart_id=cart_id, user_id=user_id)
        await self.ctx.emit(PROCEDURE_REQUESTS, ProcedureRequest(
            txn_id=session.txn_id, shop_id=shop_id, cart_id=cart_id,
            terminal_profile=prof.name, flow="set-wallet", user_id=user_id),
            session.txn_id, sender="relay")
        log.info("relay %s: procedure request %s to %s", session.sid, session.txn_id, shop_id)
        return await self.settle(session, started_ms)

    # 2. ⑤ the shop's payment information → ⑥ a wallet, or FIG. 7 (A).
    async def on_payment_information(self, inbound: Inbound) -> None:
        info: PaymentInformation = inbound.message
        session = await self.db.by_txn(info.txn_id)
        if session is None or session.flow != "set-wallet":
            return  # another relay's transaction, or one this relay has forgotten
        if session.shop_id != info.shop_id:
            await self.ctx.audit("wrong-shop", info.txn_id, f"payment information from "
                                 f"{info.shop_id}, the terminal pays {session.shop_id}")
            return
        if session.stage == flow.AWAIT_LOGIN and session.wallet_id:
            # A redelivery after the transfer (perhaps a crash before it left): send it again;
            # the wallet takes a repeat of the same payment information as one.
            await self._send_to_wallet(session, session.wallet_id, inbound.raw)
            return
        if session.stage != flow.PROCEDURE:
            return  # the payment information went on, and the wallet has answered
        usable = [w for w in info.usable_wallets if w in self.known_wallets()]
        if not usable:
            await self.ctx.audit("no-usable-wallet", info.txn_id,
                                 f"{info.shop_id} designates {info.usable_wallets}, none "
                                 "of which this relay reaches")
            await self._fail(session, "The shop accepts no wallet server this relay can "
                             "reach. Nothing was paid.")
            return
        target = flow.route_wallet(usable, session.user_id, self.preset_wallets())
        if target is not None:
            await self._transfer(session, target, inbound.raw, usable)
            return
        prof = self.profile_of(session.profile)
        pages = wallet_selection_page(prof, txn_id=session.txn_id, session_token=session.token,
                                      wallets=[(w, w) for w in usable])
        await self.show(session, stage=flow.SELECTING, held=inbound.raw, usable=usable,
                        pages=[p.html for p in pages], page_kind="wallet-selection")

    async def _transfer(self, session: RelaySession, wallet_id: str, payment_information: bytes,
                        usable: list[str]) -> None:
        """⑥: the shop's envelope, byte for byte, to exactly one wallet server (R5)."""
        moved = await self.db.advance(session.sid, session.stage, self.now(),
                                      stage=flow.AWAIT_LOGIN, wallet_id=wallet_id,
                                      usable=usable, held=payment_information)
        if moved is None:
            return  # another request or record moved it first
        try:
            await self._send_to_wallet(session, wallet_id, payment_information)
        except Exception:
            await self.db.advance(session.sid, flow.AWAIT_LOGIN, self.now(),
                                  stage=session.stage, wallet_id="")
            raise
        self.waiters.notify(session.sid)
        log.info("relay %s: payment information %s to %s", session.sid, session.txn_id,
                 wallet_id)

    async def _send_to_wallet(self, session: RelaySession, wallet_id: str,
                              payment_information: bytes) -> None:
        await self.ctx.emit(WALLET_INBOX, WalletPaymentInformation(
            wallet_id=wallet_id, txn_id=session.txn_id,
            payment_information=payment_information), session.txn_id, sender="relay")

    # 2'. FIG. 7 (B): the user's choice, checked against the designated wallets (R35).
    async def select_wallet(self, session: RelaySession, choice: str, started_ms: int) -> View:
        decision = flow.on_request("select-wallet", session.stage)
        if isinstance(decision, flow.OutOfStep):
            return await self.out_of_step(session, "select-wallet", decision.detail)
        if isinstance(decision, flow.Show):
            return await self.settle(session, started_ms)
        if not flow.choice_ok(choice, session.usable):
            await self.ctx.audit("undesignated-wallet", session.txn_id,
                                 f"terminal chose {choice[:40]!r}; {session.shop_id} "
                                 f"designates {', '.join(session.usable)}")
            raise Refused(self.error_view(
                self.profile_of(session.profile), "The shop does not accept that wallet "
                f"server. Please choose one of: {', '.join(session.usable)}.",
                session=session, status=400))
        assert session.held is not None
        await self._transfer(session, choice, session.held, session.usable)
        return await self.settle(session, started_ms)

    # 3. ⑦⑧ (and conditions, confirming, ⑬): the wallet's contents, converted.
    async def on_wallet_contents(self, inbound: Inbound) -> None:
        contents: WalletContents = inbound.message
        session = await self.db.by_txn(contents.txn_id)
        if session is None or session.flow != "set-wallet":
            return
        if session.wallet_id != contents.wallet_id:
            await self.ctx.audit("wrong-wallet", contents.txn_id,
                                 f"contents from {contents.wallet_id}, the payment went to "
                                 f"{session.wallet_id or 'no wallet yet'}")
            return
        then = flow.on_wallet_contents(session.stage, contents.kind)
        if then is None:
            return  # a duplicate, or stale contents for a step already taken
        cookie = session.wallet_cookie
        try:
            cookie = sessions.cookie_of(contents.set_cookie) or cookie  # FIG. 6 ①
        except sessions.BadCookie as exc:
            await self.ctx.audit("bad-cookie", contents.txn_id, str(exc))
        kind = contents.kind
        try:
            pages = self.convert(kind, contents.html, session,
                                 wallet_actions(kind, contents.html))
        except MissingItem as exc:
            pages, then, kind = (await self.conversion_failed(session, exc, "wallet contents"),
                                 flow.FAILED, "error")
        await self.show(session, stage=then, wallet_cookie=cookie, pages=pages, page_kind=kind)
        log.info("relay %s: %s contents from %s → %s", session.sid, contents.kind,
                 contents.wallet_id, then)

    # 4. ⑨⑩ the login, password sealed to the wallet at once, cookie restored (FIG. 6 ③).
    async def login(self, session: RelaySession, user_name: str, password: str,
                    started_ms: int) -> View:
        decision = flow.on_request("login", session.stage)
        if isinstance(decision, flow.OutOfStep):
            return await self.out_of_step(session, "login", decision.detail)
        if isinstance(decision, flow.Show):
            return await self.settle(session, started_ms)
        if not user_name.strip() or not password or len(user_name) > 64 or len(password) > 256:
            raise Refused(self.error_view(
                self.profile_of(session.profile), "Type your user name and password.",
                session=session, status=400))
        sealed = crypto.seal(self.ctx.registry.sealing[session.wallet_id][1], password.encode(),
                             wallet_password_context(session.txn_id))
        await self.step(session, "login", WALLET_INBOX, WalletLogin(
            wallet_id=session.wallet_id, txn_id=session.txn_id,
            cookie=self._cookie(session), user_name=user_name.strip(),
            password_sealed=sealed), session.txn_id)
        return await self.settle(session, started_ms)

    def _cookie(self, session: RelaySession) -> str:
        return sessions.cookie_header(session.wallet_cookie) if session.wallet_cookie else ""

    # 4'. the payment conditions: card brand and payment method ([d:202]).
    async def conditions(self, session: RelaySession, brand: str, method: str,
                         started_ms: int) -> View:
        decision = flow.on_request("conditions", session.stage)
        if isinstance(decision, flow.OutOfStep):
            return await self.out_of_step(session, "conditions", decision.detail)
        if isinstance(decision, flow.Show):
            return await self.settle(session, started_ms)
        if not brand or not method or len(brand) > 32 or len(method) > 32:
            raise Refused(self.error_view(
                self.profile_of(session.profile), "Choose a card and a payment method.",
                session=session, status=400))
        await self.step(session, "conditions", WALLET_INBOX, WalletConditions(
            wallet_id=session.wallet_id, txn_id=session.txn_id, cookie=self._cookie(session),
            card_brand=brand, method=method), session.txn_id)
        return await self.settle(session, started_ms)

    # 5. ⑪' the final approval, once; the keep-alive timer starts with it (claim 10).
    async def approve(self, session: RelaySession, started_ms: int) -> View:
        decision = flow.on_request("approve", session.stage)
        if isinstance(decision, flow.OutOfStep):
            return await self.out_of_step(session, "approve", decision.detail)
        if isinstance(decision, flow.Advance):
            await self.step(session, "approve", WALLET_INBOX, WalletFinalApproval(
                wallet_id=session.wallet_id, txn_id=session.txn_id,
                cookie=self._cookie(session)), session.txn_id)
            log.info("relay %s: final approval of %s to %s", session.sid, session.txn_id,
                     session.wallet_id)
        return await self.settle(session, started_ms)

    # 6. ⑭ an inquiry: the held result if it is in, the progress page again if not (R31).
    async def inquire(self, session: RelaySession) -> View:
        return self.view(session)

    async def page(self, session: RelaySession, index: int) -> View:
        """R24: the next (or any) page of divided contents."""
        return self.view(session, index)

    # The shop could not take the procedure (an unknown or empty cart): tell the terminal.
    async def on_order_status(self, inbound: Inbound) -> None:
        status: OrderStatus = inbound.message
        if status.status != "NOT_PAID":
            return
        session = await self.db.by_txn(status.session) or await self.db.get(status.session)
        if session is None or session.shop_id != status.shop_id \
                or session.stage not in (flow.PROCEDURE, flow.ORDERING):
            return
        await self._fail(session, f"The shop could not take the order: {status.detail}.")

    async def _fail(self, session: RelaySession, message: str) -> None:
        view = self.error_view(self.profile_of(session.profile), message, session=session)
        await self.show(session, stage=flow.FAILED, pages=[view.html], page_kind="error")


def _txn_id() -> str:
    return "txn-" + secrets.token_hex(10)
