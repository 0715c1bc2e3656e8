"""The two-sided settlement (seed 003) for limited terminals, fronted by the relay.

A phone that cannot hold the user's keys or run the terminal's software pays through the relay,
which plays the user's terminal on the bus. Top to bottom, per session:

1. M1   ``/pay`` with ``flow=two-sided``: the relay places the order (``OrderRequest``, sender
        ``relay``, session = the relay session) with the items the shop's confirm page listed.
2. M4   the shop's payment request arrives on ``kessai.wakeups.relay`` for that session; the relay
        converts it into a "payment-request" page with a card form (the shop's figures are
        checked first, as the terminal does: A14).
3. M7   ``/confirm``: the card number and expiry the user typed (and the password of a
        password user) are sealed to the settlement server at once, bound to the order's join
        key, and the second request goes to ``kessai.settlement.second`` as the relay — a
        "channel" user (cl. 12) is authenticated by the relay's signed envelope, a "password"
        user (cl. 13) by the sealed password. Users who sign with a device key (cl. 10) cannot
        pay through a relay that does not hold it.
4. M9   the user's result comes back; it is converted, held for the terminal (R32) and, in
        VIA_TERMINAL mode, relayed to the shop with the shop authenticator unchanged (M10,
        cl. 7) as the terminal would.

Card numbers and passwords exist only in the handler that seals them: never stored, logged,
put on a page or on a topic the shop reads.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from html import escape
from typing import Any

from agents.relay import flow
from agents.relay.core import Refused, RelayCore, View
from agents.relay.pages import Action, Input
from agents.relay.profiles import Profile
from agents.relay.store import RelaySession
from agents.relay.templates import MissingItem
from kessai import envelope
from kessai.authenticators import join_key
from kessai.runtime import Inbound
from protocols.contents import tagged_payment_information
from protocols.user import (
    WalletError,
    build_second_request,
    check_displayed,
    delivery_for,
    relay_of,
)
from schemas.v1 import OrderRequest, PaymentRequest, PaymentResult

log = logging.getLogger("kessai.relay")

ORDER_REQUESTS = "kessai.order-requests"
SECOND = "kessai.settlement.second"
RELAYED = "kessai.payment-results.relayed"
MAX_LINES = 20
TYPED = "typed"  # the alias of the card the user typed, for build_second_request


def parse_items(raw: str) -> list[list[Any]]:
    """``XXXX:1,YYYY:2`` (from the shop's confirm page) → ``[["XXXX", 1], ["YYYY", 2]]``.

    Raises:
        flow.FormError: empty, too many lines, or a line that is not ``CODE:QTY``.
    """
    items: list[list[Any]] = []
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        code, _, qty = entry.partition(":")
        if not code or not code.isalnum() or len(code) > 16 or not qty.isdigit() \
                or not 1 <= int(qty) <= 99:
            raise flow.FormError("the order's items are not readable; start again at the shop")
        items.append([code, int(qty)])
    if not items or len(items) > MAX_LINES:
        raise flow.FormError("the order has no items (or too many); start again at the shop")
    return items


def card_inputs(auth: str, held: bool) -> tuple[Input, ...]:
    """What the payment-request page asks for: the card unless the settlement server holds
    the account (cl. 15), and the password of a password user (cl. 13)."""
    card = () if held else (Input("card", "Card number"), Input("expiry", "Expiry (YYYY-MM)"))
    password = (Input("password", "Password", "password"),) if auth == "password" else ()
    return (*card, *password)


def result_contents(result: PaymentResult, order_id: str) -> str:
    """M9 as tagged contents for the "result" template: outcome, amount, order."""
    message = {"APPROVED": "Payment completed", "DECLINED": "The card was declined",
               "MISMATCH": "The shop and you disagree on the order",
               "AUTH_FAILED": "You could not be authenticated",
               "EXPIRED": "The payment took too long and was cancelled"}.get(
                   result.outcome, "The payment did not go through")
    return (f"<Outcome>{result.outcome}</Outcome><Message>{message}</Message>"
            f"<Total>{result.amount}</Total><TxnId>{order_id}</TxnId>")


@dataclass
class TwoSided(RelayCore):
    # 1. M1: the order, placed for the terminal.
    async def pay(self, prof: Profile, shop_id: str, user_id: str, raw_items: str,
                  started_ms: int) -> View:
        # How each user authenticates is the relay's configuration (its key file's "users").
        user = self.ctx.actor_keys("relay").secrets.get("users", {}).get(user_id)
        if user is None:
            await self.ctx.audit("unknown-user", f"relay:{shop_id}",
                                 f"two-sided payment for unknown user {user_id!r}")
            raise Refused(self.error_view(prof, "The relay does not know that user.",
                                          status=400))
        if user["auth"] == "signature":
            await self.ctx.audit("unsupported-auth", f"relay:{shop_id}",
                                 f"user {user_id} signs with a device key the relay lacks")
            raise Refused(self.error_view(
                prof, "You sign payments with the key on your own device; pay from that "
                "device.", status=400))
        try:
            items = parse_items(raw_items)
        except flow.FormError as exc:
            raise Refused(self.error_view(prof, str(exc), status=400)) from None
        session = await self.new_session("two-sided", prof, shop_id=shop_id, user_id=user_id,
                                         extra={"auth": user["auth"],
                                                "held": bool(user.get("held", False)),
                                                "items": items})
        await self.ctx.emit(ORDER_REQUESTS, OrderRequest(
            session=session.sid, user_id=user_id, shop_id=shop_id, items=items,
            delivery=delivery_for(user_id)), session.sid, sender="relay")
        log.info("relay %s: order request for %s at %s", session.sid, user_id, shop_id)
        return await self.settle(session, started_ms)

    # 2. M4: the shop's payment request, shown with the card form.
    async def on_payment_request(self, inbound: Inbound) -> None:
        request: PaymentRequest = inbound.message
        session = await self.db.get(request.session)
        if session is None or session.flow != "two-sided":
            return  # a terminal's purchase, or another relay's
        key = join_key(request.shop_id, request.order_id)
        if request.shop_id != session.shop_id or request.user_id != session.user_id:
            await self.ctx.audit("unexpected-payment-request", key,
                                 f"payment request from {inbound.sender!r} does not match "
                                 f"relay session {session.sid}")
            return
        if session.stage != flow.ORDERING:
            return  # shown already
        mistake = check_displayed(session.extra.get("items", []), request)
        if mistake is not None:
            await self.ctx.audit("user-refused", key, mistake)
            view = self.error_view(self.profile_of(session.profile),
                                   f"The shop's payment request is wrong: {mistake}. "
                                   "Nothing was paid.", session=session)
            await self.show(session, stage=flow.FAILED, txn_id=key, pages=[view.html],
                            page_kind="error")
            return
        shown = dataclasses.replace(session, txn_id=key)
        auth, held = session.extra.get("auth", ""), bool(session.extra.get("held"))
        kind = "payment-request"
        try:
            source = (f"<Shop>{escape(request.shop_id)}</Shop>"
                      + tagged_payment_information(request.content, request.order_id))
            pages = self.convert(kind, source, shown,
                                 [Action("Pay", "/confirm", inputs=card_inputs(auth, held))])
            then = flow.PAYING
        except MissingItem as exc:
            pages, then, kind = (await self.conversion_failed(shown, exc, "payment request"),
                                 flow.FAILED, "error")
        await self.show(session, stage=then, txn_id=key, held=inbound.raw, pages=pages,
                        page_kind=kind, extra={**session.extra, "order_id": request.order_id})

    # 3. M7: the second request, card and password sealed to the settlement server at once.
    async def confirm(self, session: RelaySession, card: str, expiry: str, password: str,
                      started_ms: int) -> View:
        decision = flow.on_request("confirm", session.stage)
        if isinstance(decision, flow.OutOfStep):
            return await self.out_of_step(session, "confirm", decision.detail)
        if isinstance(decision, flow.Show):
            return await self.settle(session, started_ms)
        assert session.held is not None
        request = envelope.open_record(session.held, self.ctx.registry).message
        auth, held = session.extra.get("auth", ""), bool(session.extra.get("held"))
        prof = self.profile_of(session.profile)
        user_wallet: dict[str, Any] = {"auth": auth, "held": held, "cards": {}}
        try:
            if not held:
                pan, exp = flow.card_from_form(card, expiry)
                user_wallet["cards"][TYPED] = {"pan": pan, "expiry": exp}
            if auth == "password":
                if not password or len(password) > 256:
                    raise flow.FormError("type your password")
                user_wallet["password"] = password
            second = build_second_request(request, user_wallet, TYPED,
                                                 self.ctx.registry.sealing["settlement"][1])
        except (flow.FormError, WalletError) as exc:
            raise Refused(self.error_view(prof, str(exc), session=session,
                                          status=400)) from None
        await self.step(session, "confirm", SECOND, second, session.txn_id)
        log.info("relay %s: second request for %s", session.sid, session.txn_id)
        return await self.settle(session, started_ms)

    # 4. M9 → the result page, held; M10 to the shop in VIA_TERMINAL mode.
    async def on_payment_result(self, inbound: Inbound) -> None:
        result: PaymentResult = inbound.message
        if result.recipient != "user":
            return
        session = await self.db.get(result.session)
        if session is None or session.flow != "two-sided":
            return
        key = join_key(result.shop_id, result.order_id)
        if session.txn_id != key:
            await self.ctx.audit("unexpected-result", key,
                                 f"result for {key} on relay session {session.sid}")
            return
        if session.stage in (flow.PAYING, flow.SETTLING):
            kind = "result"
            try:
                pages = self.convert(kind, result_contents(result, result.order_id), session)
            except MissingItem as exc:
                pages, kind = await self.conversion_failed(session, exc, "result"), "error"
            await self.show(session, stage=flow.DONE, pages=pages, page_kind=kind,
                            extra={**session.extra, "outcome": result.outcome})
            log.info("relay %s: order %s %s", session.sid, key, result.outcome)
        if result.result_mode == "VIA_TERMINAL":
            # Every copy, redeliveries too: the shop records a final status once.
            await self.ctx.emit(RELAYED, relay_of(result), key, sender="relay")

