"""Enrolment with the CA through the relay (seeds 000/001 §2.7, claims 12–13, R38–R39).

Top to bottom, per enrolment session:

1. ``GET /enrol``: the relay's registration form, converted for the terminal.
2. ``POST /enrol``: the user's card, expiry, brand, wallet server and user name. The card is
   sealed to the CA the moment it arrives (the relay keeps nothing, R43) and the registration
   goes to ``kessai.ca.registrations`` [d:166].
3. The CA (and only the CA: the handler is declared for it) answers on
   ``kessai.relay.ca-contents`` with two things: contents for the terminal,
   which the relay converts like any other (claim 13), and the user's authentication
   information — the certificate — which the redirecting section forwards to the wallet
   server (claim 12) and never to the terminal (R39).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from dataclasses import dataclass
from html import escape

from agents.relay import flow
from agents.relay.core import Refused, RelayCore, View
from agents.relay.pages import Action, Input
from agents.relay.profiles import Profile
from agents.relay.store import RelaySession
from agents.relay.templates import MissingItem, extract
from kessai import crypto
from kessai.runtime import Inbound
from protocols.sealed import ca_card_context, pack_registration
from schemas.relay import AuthenticationInformation, CAContents, CARegistration

log = logging.getLogger("kessai.relay")

CA_REGISTRATIONS = "kessai.ca.registrations"
WALLET_INBOX = "kessai.wallet.inbox"
BRANDS: tuple[str, ...] = ("visa", "mastercard", "jcb")
FORM_INTRO = "<Message>Your card details go to the certificate authority only.</Message>"


def enrol_action(wallets: list[str]) -> Action:
    return Action("Register", "/enrol", inputs=(
        Input("user", "User name"),
        Input("wallet", "Wallet server", "select", tuple((w, w) for w in wallets)),
        Input("brand", "Card brand", "select", tuple((b, b) for b in BRANDS)),
        Input("card", "Card number"),
        Input("expiry", "Expiry (YYYY-MM)"),
        Input("password", "New wallet password", "password"),
    ))


@dataclass
class Enrolment(RelayCore):
    def wallets(self) -> list[str]:
        return [w for w in self.ctx.registry.actors_of("wallet") if w in self.ctx.registry.sealing]

    # 1. the registration form.
    async def form(self, prof: Profile) -> View:
        session = await self.new_session("enrol", prof, txn_id=_request_id())
        try:
            pages = self.convert("enrol", FORM_INTRO, session, [enrol_action(self.wallets())])
        except MissingItem as exc:
            pages = await self.conversion_failed(session, exc, "enrolment form")
        moved = await self.show(session, pages=pages, page_kind="enrol")
        assert moved is not None
        return self.view(moved)

    # 2. the registration, card sealed to the CA at once.
    async def register(self, session: RelaySession, user: str, wallet_id: str, brand: str,
                       card: str, expiry: str, password: str, started_ms: int) -> View:
        decision = flow.on_request("enrol", session.stage)
        if isinstance(decision, flow.OutOfStep):
            return await self.out_of_step(session, "enrol", decision.detail)
        if isinstance(decision, flow.Show):
            return await self.settle(session, started_ms)
        prof = self.profile_of(session.profile)
        try:
            user_id = flow.user_from_form(user)
            if wallet_id not in self.wallets():
                raise flow.FormError("choose one of the wallet servers offered")
            if brand not in BRANDS:
                raise flow.FormError("choose one of the card brands offered")
            pan, exp = flow.card_from_form(card, expiry)
            if len(password) > 256:
                raise flow.FormError("the password is too long")
        except flow.FormError as exc:
            raise Refused(self.error_view(prof, str(exc), session=session,
                                          status=400)) from None
        sealed = crypto.seal(self.ctx.registry.sealing["ca"][1],
                             pack_registration(pan, exp, password),
                             ca_card_context(session.txn_id))
        await self.step(session, "enrol", CA_REGISTRATIONS, CARegistration(
            request_id=session.txn_id, user_id=user_id, wallet_id=wallet_id, brand=brand,
            card_sealed=sealed), session.txn_id, user_id=user_id, wallet_id=wallet_id)
        log.info("relay %s: enrolment %s for %s at %s", session.sid, session.txn_id, user_id,
                 wallet_id)
        return await self.settle(session, started_ms)

    # 3. the CA's contents (claim 13) and the certificate for the wallet (claim 12).
    async def on_ca_contents(self, inbound: Inbound) -> None:
        msg: CAContents | AuthenticationInformation = inbound.message
        session = await self.db.by_txn(msg.request_id)
        if session is None or session.flow != "enrol":
            if isinstance(msg, AuthenticationInformation):
                await self.ctx.audit("unexpected-certificate", f"enrol:{msg.request_id}",
                                     "authentication information for no enrolment here")
            return
        if isinstance(msg, AuthenticationInformation):
            await self._forward(session, msg)
        elif session.stage == flow.ENROLLING:
            kind = "ca"
            try:
                pages = self.convert(kind, ca_items(msg.html, msg.request_id), session)
            except MissingItem as exc:
                pages, kind = await self.conversion_failed(session, exc, "CA contents"), "error"
            await self.show(session, stage=flow.DONE, pages=pages, page_kind=kind)

    async def _forward(self, session: RelaySession, info: AuthenticationInformation) -> None:
        """Claim 12: the redirecting section sends the certificate on to the wallet server —
        the one the user enrolled with — and never to the terminal (R39)."""
        if info.wallet_id != session.wallet_id:
            await self.ctx.audit("wrong-wallet", f"enrol:{info.request_id}",
                                 f"certificate for {info.wallet_id}, the user enrolled with "
                                 f"{session.wallet_id}")
            return
        await self.ctx.emit(WALLET_INBOX, dataclasses.replace(info, forwarded_by="relay"),
                            info.request_id, sender="relay")
        log.info("relay %s: certificate %s forwarded to %s", session.sid,
                 info.certificate.serial, info.wallet_id)


def ca_items(html: str, request_id: str) -> str:
    """The CA's contents with the items the "ca" template shows (``Status``, ``Message``,
    ``RequestId``) made from the CA's own (``Result``, ``Reason``, ``Brand``, ``CardEnding``,
    ``Wallet``, ``User``); the CA's tags stay as they are. Nothing beyond the last four
    digits of the card was in the CA's contents, and nothing is added."""
    found = extract(html)

    def item(name: str) -> str:
        value = found.get(name)
        return value if isinstance(value, str) else ""

    status = item("Result")
    if status == "registered":
        message = (f"Your {item('Brand')} card ending {item('CardEnding')} is registered "
                   f"with {item('Wallet')} for {item('User')}.")
    else:
        message = f"The card was not registered: {item('Reason') or 'unknown reason'}."
    e = escape
    return (f"{html}<Status>{e(status)}</Status><Message>{e(message)}</Message>"
            f"<RequestId>{e(request_id)}</RequestId>")


def _request_id() -> str:
    return "enr-" + secrets.token_hex(10)
