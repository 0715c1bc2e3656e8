"""Wallet worker: the server wallets of seeds 000/001 (wallet server 60, [d:159], spec §2.9).

Everything arrives on ``kessai.wallet.inbox`` keyed by txn id; contents for the terminal go to
the relay on ``kessai.relay.wallet-contents``. Protocol, top to bottom, per payment procedure:

1. ⑥→⑦   ``WalletPaymentInformation`` (relay): the shop's signed payment information, which
          must designate this wallet → a session with a random cookie and the login contents
          with ``Set-Cookie: session_id=…`` (R10).
2. ⑩      ``WalletLogin`` (relay, cookie restored, password sealed to this wallet): a wrong
          password gives ``login-failed`` and nothing else (R11); a right one the conditions.
3.        ``WalletConditions``: card brand and method agreed → the confirming information
          with items, ``<Total>`` and ``<TxnId>`` (R12, claims 5, 7).
4. ⑪'→⑪  ``WalletFinalApproval`` → the ``SetPaymentRequest`` to the shop, once: only for a
          logged-in, confirmed session of this txn (R13, R44); a repeated approval sends
          nothing (R33). The card is sealed to the gateway, the user's key signs (R40).
5. ⑫→⑬   ``ForwardedApproval`` (the shop, carrying the gateway's signed response) →
          ``approval`` or ``declined`` contents to the relay (R16).

Enrolment (claim 12, R39): ``AuthenticationInformation`` the relay forwards from the CA → the
certificate, card and payment key go into the user's personal wallet. A user new to this
wallet gets the password the user chose at enrolment: the CA puts its salted hash (never the
password) in ``extra["password_salt"]`` / ``extra["password_hash"]``, hex. An existing user
keeps their password; changing it is a personal-wallet operation ([d:316]) not done here.

Each message type is declared with the sender kind that may send it (``declare``: the relay,
or a shop for the approval it carries); the runtime's door dead-letters any other type or
sender before a handler runs. A record for a wallet server this worker does not host is
skipped. The session is found by txn id and admitted only with its cookie (R29). Card numbers,
passwords and keys never reach a log, an exception message or an unsealed field.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import msgpack

from agents.wallet import checks, contents, sessions
from agents.wallet.checks import Refused
from agents.wallet.request import payment_request
from agents.wallet.sessions import Session
from agents.wallet.store import WalletStore, seed_from_secrets
from kessai import crypto, envelope
from kessai.errors import ConfigError, SealError
from kessai.runtime import AgentContext, Handler, Inbound
from protocols.sealed import wallet_password_context
from schemas.codec import from_body
from schemas.relay import (
    AuthenticationInformation,
    ForwardedApproval,
    PaymentInformation,
    SetPaymentRequest,
    WalletConditions,
    WalletContentKind,
    WalletContents,
    WalletFinalApproval,
    WalletLogin,
    WalletPaymentInformation,
)

log = logging.getLogger("kessai.wallet")

KIND = "wallet"  # one worker hosts every wallet server of the key set

INBOX = "kessai.wallet.inbox"
CONTENTS = "kessai.relay.wallet-contents"
PAYMENT_REQUESTS = "kessai.shop.payment-requests"
STORE_FILE = "wallet.sqlite"
_DUMMY_SALT = b"\x00" * 16


@dataclass
class Wallet:
    ctx: AgentContext
    store: WalletStore

    def hosted(self, handler: Handler) -> Handler:
        """``handler``, for records addressed to a wallet server this worker hosts. A record
        for another wallet server is not for this worker and is skipped (not an error)."""

        async def handle(inbound: Inbound) -> None:
            msg = inbound.message
            if msg.wallet_id in self.ctx.keys:
                await handler(inbound)
            else:
                log.debug("wallet: %s for wallet %s is not for this worker",
                          type(msg).__name__, msg.wallet_id)

        handle.__qualname__ = f"hosted({handler.__qualname__})"
        return handle

    # 1. ⑥→⑦: payment information in, login contents with a session cookie out (R10).
    async def on_payment_information(self, inbound: Inbound) -> None:
        msg: WalletPaymentInformation = inbound.message
        try:
            info, _ = checks.payment_information(msg.payment_information, self.ctx.registry,
                                                 msg.wallet_id, msg.txn_id)
        except Refused as exc:
            await self._audit("bad-payment-information", msg.wallet_id, msg.txn_id, str(exc))
            await self._send(msg.wallet_id, msg.txn_id, "error",
                             contents.error(msg.txn_id, str(exc)))
            return
        fresh = Session(msg.wallet_id, msg.txn_id, secrets.token_urlsafe(24), info.shop_id,
                        msg.payment_information)
        session = await self.store.open_session(fresh, self.ctx.clock.now_ms())
        if session.cookie != fresh.cookie:  # the txn already has a session (a repeat)
            if not checks.same_payment_information(session.payment_information,
                                                   msg.payment_information):
                await self._audit("conflicting-payment-information", msg.wallet_id,
                                  msg.txn_id, "the txn already has other payment information")
                return
            if session.state != sessions.LOGIN:
                log.info("wallet %s: txn %s is past login; repeated payment information "
                         "ignored", msg.wallet_id, msg.txn_id)
                return
        await self._send(msg.wallet_id, msg.txn_id, "login",
                         contents.login(msg.wallet_id, info), session)

    # 2. ⑩: the login, password sealed to this wallet; the session must be the cookie's.
    async def on_login(self, inbound: Inbound) -> None:
        msg: WalletLogin = inbound.message
        session = await self._admit(msg.wallet_id, msg.txn_id, msg.cookie)
        if session is None:
            return
        if not sessions.may_log_in(session):
            if session.state == sessions.LOCKED:
                await self._send(msg.wallet_id, msg.txn_id, "error",
                                 contents.error(msg.txn_id, "too many failed logins"), session)
            else:
                log.info("wallet %s: login for txn %s in state %s ignored", msg.wallet_id,
                         msg.txn_id, session.state)
            return
        info = _info(session)
        user_id = await self._authenticate(msg)
        if user_id is None:
            state = sessions.after_failure(session)
            updated = await self.store.advance(session, state=state,
                                               failures=session.failures + 1)
            if updated is None:
                return
            log.info("wallet %s: failed login for txn %s (%d)", msg.wallet_id, msg.txn_id,
                     updated.failures)
            if state == sessions.LOCKED:
                await self._audit("login-locked", msg.wallet_id, msg.txn_id,
                                  f"{updated.failures} failed logins")
                await self._send(msg.wallet_id, msg.txn_id, "error",
                                 contents.error(msg.txn_id, "too many failed logins"), updated)
                return
            left = sessions.MAX_LOGIN_FAILURES - updated.failures
            await self._send(msg.wallet_id, msg.txn_id, "login-failed",
                             contents.login_failed(msg.wallet_id, info, left), updated)
            return
        brands = [c.brand for c in await self.store.cards(msg.wallet_id, user_id)]
        if not brands:
            await self._send(msg.wallet_id, msg.txn_id, "error", contents.error(
                msg.txn_id, "no card is registered in this wallet"), session)
            return
        updated = await self.store.advance(session, state=sessions.LOGGED_IN, user_id=user_id,
                                           brand="", method="")
        if updated is not None:
            await self._send(msg.wallet_id, msg.txn_id, "conditions",
                             contents.conditions(msg.wallet_id, info, brands), updated)

    async def _authenticate(self, msg: WalletLogin) -> str | None:
        """The user id if the name and password are right ([d:202]); else None."""
        keys = self.ctx.actor_keys(msg.wallet_id)
        assert keys.seal_private is not None
        try:
            password = crypto.open_sealed(keys.seal_private, msg.password_sealed,
                                          wallet_password_context(msg.txn_id)).decode()
        except (SealError, UnicodeDecodeError):
            return None
        user = await self.store.user(msg.wallet_id, msg.user_name)
        if user is None or user.password_salt is None or user.password_hash is None:
            crypto.hash_password(password, _DUMMY_SALT)  # same work: no user enumeration
            return None
        if not crypto.password_ok(password, user.password_salt, user.password_hash):
            return None
        return user.user_id

    # 3. The conditions → the confirming information (R12).
    async def on_conditions(self, inbound: Inbound) -> None:
        msg: WalletConditions = inbound.message
        session = await self._admit(msg.wallet_id, msg.txn_id, msg.cookie)
        if session is None:
            return
        if not sessions.may_choose_conditions(session):
            await self._send(msg.wallet_id, msg.txn_id, "error", contents.error(
                msg.txn_id, "log in before choosing the payment conditions"), session)
            return
        info = _info(session)
        brands = [c.brand for c in await self.store.cards(msg.wallet_id, session.user_id)]
        problem = ("choose one of your cards" if msg.card_brand not in brands
                   else "choose a payment method offered" if msg.method not in contents.METHODS
                   else "")
        if problem:
            await self._send(msg.wallet_id, msg.txn_id, "conditions", contents.conditions(
                msg.wallet_id, info, brands, error=problem), session)
            return
        updated = await self.store.advance(session, state=sessions.CONFIRMING,
                                           brand=msg.card_brand, method=msg.method)
        if updated is not None:
            await self._send(msg.wallet_id, msg.txn_id, "confirming",
                             contents.confirming(info, msg.card_brand, msg.method), updated)

    # 4. ⑪'→⑪: the final approval sends the payment request, once (R13, R33, R44).
    async def on_final_approval(self, inbound: Inbound) -> None:
        msg: WalletFinalApproval = inbound.message
        session = await self._admit(msg.wallet_id, msg.txn_id, msg.cookie)
        if session is None:
            return
        approval_id = inbound.opened.envelope.id
        if sessions.awaits_approval(session) and session.approval_msg_id == approval_id:
            # The same record again (a crash before its offset was committed): the request
            # may not have left, so send the stored one, byte for byte the same body.
            await self._request(session, _stored_request(session))
            return
        if not sessions.may_request_payment(session):
            if sessions.awaits_approval(session) or sessions.finished(session):
                log.info("wallet %s: repeated final approval for txn %s; no second payment "
                         "request", msg.wallet_id, msg.txn_id)
                return
            await self._send(msg.wallet_id, msg.txn_id, "error", contents.error(
                msg.txn_id, "confirm the payment conditions first"), session)
            return
        card = next((c for c in await self.store.cards(msg.wallet_id, session.user_id)
                     if c.brand == session.brand), None)
        if card is None:
            await self._send(msg.wallet_id, msg.txn_id, "error", contents.error(
                msg.txn_id, "the chosen card is no longer in the wallet"), session)
            return
        gateway = self.ctx.registry.sealing.get("gateway")
        if gateway is None:
            raise ConfigError("the key registry has no sealing key for the gateway")
        request = payment_request(card, txn_id=msg.txn_id, shop_id=session.shop_id,
                                  payment_information=session.payment_information,
                                  method=session.method, gateway_public=gateway[1])
        updated = await self.store.advance(session, state=sessions.REQUESTED,
                                           request=envelope.pack_body(request),
                                           approval_msg_id=approval_id)
        if updated is not None:
            await self._request(updated, request)

    async def _request(self, session: Session, request: SetPaymentRequest) -> None:
        log.info("wallet %s: payment request for txn %s to shop %s", session.wallet_id,
                 session.txn_id, session.shop_id)
        await self.ctx.emit(PAYMENT_REQUESTS, request, session.txn_id, sender=session.wallet_id)

    # 5. ⑫→⑬: the gateway's response, carried by the shop, to the relay (R16).
    async def on_forwarded_approval(self, inbound: Inbound) -> None:
        msg: ForwardedApproval = inbound.message
        session = await self.store.session(msg.wallet_id, msg.txn_id)
        if session is None or inbound.sender != session.shop_id:
            await self._audit("unexpected-approval", msg.wallet_id, msg.txn_id,
                              f"approval from {inbound.sender} for no payment of that shop")
            return
        if sessions.finished(session):  # a repeat: the relay may ask again (R32)
            await self._send(msg.wallet_id, msg.txn_id,
                             session.result_kind,  # type: ignore[arg-type]
                             session.result_html, session)
            return
        if not sessions.awaits_approval(session):
            await self._audit("unexpected-approval", msg.wallet_id, msg.txn_id,
                              f"approval while the session is {session.state}")
            return
        try:
            response = checks.approval_response(msg.original, self.ctx.registry,
                                                _info(session), msg.wallet_id)
        except Refused as exc:
            await self._audit("bad-approval", msg.wallet_id, msg.txn_id, str(exc))
            return
        kind: WalletContentKind = "approval" if response.approved else "declined"
        html = contents.approval(response) if response.approved else contents.declined(response)
        updated = await self.store.advance(
            session, state=sessions.APPROVED if response.approved else sessions.DECLINED,
            result_kind=kind, result_html=html)
        if updated is not None:
            log.info("wallet %s: txn %s %s", msg.wallet_id, msg.txn_id, kind)
            await self._send(msg.wallet_id, msg.txn_id, kind, html, updated)

    # Enrolment (claim 12, R39): the CA's authentication information into the personal wallet.
    async def on_authentication_information(self, inbound: Inbound) -> None:
        msg: AuthenticationInformation = inbound.message
        keys = self.ctx.actor_keys(msg.wallet_id)
        assert keys.seal_private is not None
        try:
            user, card = checks.enrolment(msg, self.ctx.registry, keys.seal_private,
                                          self.ctx.clock.now_ms())
        except Refused as exc:
            await self._audit("bad-enrolment", msg.wallet_id, f"enrol:{msg.request_id}",
                              str(exc))
            return
        new_user = await self.store.enrol(user, card)
        log.info("wallet %s: certificate %s (%s) stored for %s user %s", msg.wallet_id,
                 card.certificate.serial, card.brand, "new" if new_user else "existing",
                 card.user_id)

    # -- helpers -------------------------------------------------------------------------
    async def _admit(self, wallet_id: str, txn_id: str, cookie: str) -> Session | None:
        """The txn's session if ``cookie`` is its cookie (R29); else an error page."""
        session = await self.store.session(wallet_id, txn_id)
        if session is None or not sessions.cookie_ok(session, cookie):
            await self._audit("unknown-session", wallet_id, txn_id,
                              "no session for this txn and cookie")
            await self._send(wallet_id, txn_id, "error",
                             contents.error(txn_id, "session not recognised"))
            return None
        return session

    async def _send(self, wallet_id: str, txn_id: str, kind: WalletContentKind, html: str,
                    session: Session | None = None) -> None:
        cookie = sessions.set_cookie(session.cookie) if session is not None else ""
        await self.ctx.emit(CONTENTS, WalletContents(wallet_id, txn_id, kind, html, cookie),
                            txn_id, sender=wallet_id)

    async def _audit(self, kind: str, wallet_id: str, txn_id: str, detail: str) -> None:
        await self.ctx.audit(kind, txn_id, f"{wallet_id}: {detail}", sender=wallet_id)


def _info(session: Session) -> PaymentInformation:
    """The payment information stored with the session (verified when it arrived)."""
    return envelope.body_of(envelope.decode(session.payment_information))  # type: ignore[no-any-return]


def _stored_request(session: Session) -> SetPaymentRequest:
    return from_body(SetPaymentRequest, msgpack.unpackb(session.request, raw=False))


def declare(ctx: AgentContext, wallet: Wallet) -> None:
    """The wallet's handlers on its inbox. The relay speaks for the terminal (steps 1–4) and
    forwards the CA's certificates; a shop carries the gateway's approval (step 5)."""
    ctx.handle(INBOX, wallet.hosted(wallet.on_payment_information),
               types=(WalletPaymentInformation,), senders=("relay",))
    ctx.handle(INBOX, wallet.hosted(wallet.on_login), types=(WalletLogin,), senders=("relay",))
    ctx.handle(INBOX, wallet.hosted(wallet.on_conditions), types=(WalletConditions,),
               senders=("relay",))
    ctx.handle(INBOX, wallet.hosted(wallet.on_final_approval), types=(WalletFinalApproval,),
               senders=("relay",))
    ctx.handle(INBOX, wallet.hosted(wallet.on_forwarded_approval), types=(ForwardedApproval,),
               senders=("shop",))
    ctx.handle(INBOX, wallet.hosted(wallet.on_authentication_information),
               types=(AuthenticationInformation,), senders=("relay",))


def register(ctx: AgentContext) -> None:
    """Declare the inbox handlers; the store opens (and seeds the personal wallets) on use
    and closes when the worker stops."""
    seed = []
    for wallet_id in ctx.keys:
        if ctx.actor_keys(wallet_id).seal_private is None:
            raise ConfigError(f"{wallet_id} has no sealing key; recreate the key set with "
                              f"'kessai keys init --force {ctx.settings.keys_dir}'")
        seed += seed_from_secrets(wallet_id, ctx.actor_keys(wallet_id).secrets.get("users", {}))
    wallet = Wallet(ctx, WalletStore(ctx.settings.data_dir / STORE_FILE, seed,
                                      synchronous=ctx.settings.sqlite_synchronous))
    declare(ctx, wallet)
    ctx.on_stop(wallet.store.close)
