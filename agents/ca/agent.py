"""CA worker: the registration authority of seeds 000/001 (CA 80, [d:166, 174]; claims 12, 13;
spec R38, R39).

Protocol, top to bottom, per enrolment request:

1. The terminal's card data reaches the CA through the relay: ``CARegistration`` on
   ``kessai.ca.registrations`` (declared for the relay only: the runtime's door
   dead-letters any other type or sender), the card (and the wallet password
   the user chose, if any) sealed to the CA with ``ca_card_context(request_id)``.
2. The CA checks the card (well-formed number, not expired, brand matches the number) and that
   the wallet server is one it knows. A bad card → ``CAContents`` "rejected" with the reason,
   and no certificate.
3. It makes the user's payment key, issues the ``Certificate`` (serial, user, wallet, brand,
   the key's public half, valid two years) signed with the CA's key.
4. ``AuthenticationInformation`` — the certificate, and the card and payment key sealed to the
   wallet server with ``wallet_enrol_context(request_id)``, plus the salted hash of the
   user's password in ``extra`` — and ``CAContents`` for the terminal ("registered", the
   serial and brand, the card's last four digits only) go to the relay on
   ``kessai.relay.ca-contents``. The relay sends the first to the wallet (claim 12), never to
   the terminal (R39), and converts the second for the terminal (claim 13).

Idempotent: the issuance is recorded per request id, so a redelivered registration gets the
same certificate and the same messages again, never a second certificate.
"""

from __future__ import annotations

import base64
import hashlib
import logging

import msgpack

from agents.ca import contents, rules
from agents.ca.store import CAStore
from kessai import authenticators, certificates, crypto
from kessai.errors import ConfigError, SealError
from kessai.runtime import AgentContext, Inbound
from protocols.sealed import ca_card_context, unpack_registration, wallet_enrol_context
from schemas.relay import AuthenticationInformation, CAContents, CARegistration, Certificate

log = logging.getLogger("kessai.ca")

ACTORS = ["ca"]

REGISTRATIONS = "kessai.ca.registrations"
CA_CONTENTS = "kessai.relay.ca-contents"
STORE_FILE = "ca.sqlite"
VALIDITY_MS = 2 * 365 * 24 * 3600 * 1000  # two years ([I]: the patent names no lifetime)
UNKNOWN_WALLET = "unknown_wallet"
UNREADABLE_CARD = "unreadable_card"


def serial_for(request_id: str) -> str:
    """A certificate serial derived from the request, so a redelivery names the same one."""
    digest = hashlib.sha256(b"kessai/ca-serial/v1\x00" + request_id.encode()).digest()
    return "ca-" + base64.b32encode(digest[:10]).decode().lower()


class CA:
    def __init__(self, ctx: AgentContext, store: CAStore) -> None:
        self.ctx = ctx
        self.store = store
        keys = ctx.actor_keys("ca")
        if keys.seal_private is None:
            raise ConfigError(f"the CA's key file has no sealing key; recreate the key set "
                              f"with 'kessai keys init --force {ctx.settings.keys_dir}'")
        self.seal_private = keys.seal_private
        self.signing_private = keys.signing_private

    async def on_registration(self, inbound: Inbound) -> None:
        reg: CARegistration = inbound.message
        issued = await self.store.get(reg.request_id)
        if issued is not None:  # a repeat: the same certificate, the same messages
            await self._send(*issued)
            return

        # 1.–2. Open and check the card.
        wallet = self.ctx.registry.sealing.get(reg.wallet_id)
        if reg.wallet_id not in self.ctx.registry.actors_of("wallet") or wallet is None:
            await self._reject(reg, UNKNOWN_WALLET)
            return
        try:
            sealed = unpack_registration(crypto.open_sealed(
                self.seal_private, reg.card_sealed, ca_card_context(reg.request_id)))
        except (SealError, msgpack.UnpackException, ValueError, TypeError):
            await self._reject(reg, UNREADABLE_CARD)
            return
        now = self.ctx.clock.now_ms()
        problem = rules.registration_problem(sealed.pan, sealed.expiry, reg.brand, now)
        if problem is not None:
            await self._reject(reg, problem)
            return

        # 3. The user's payment key and the certificate for it.
        user_key = crypto.new_signing_key()
        cert = certificates.issue(self.signing_private, Certificate(
            serial=serial_for(reg.request_id), user_id=reg.user_id, wallet_id=reg.wallet_id,
            brand=rules.certified_brand(sealed.pan, reg.brand),
            public_key=crypto.signing_public(user_key), not_after_ms=now + VALIDITY_MS))

        # 4. The authentication information for the wallet, the contents for the terminal.
        context = wallet_enrol_context(reg.request_id)
        extra: dict[str, str] = {}
        if sealed.password:
            salt, digest = crypto.hash_password(sealed.password)
            extra = {"password_salt": salt.hex(), "password_hash": digest.hex()}
        information = AuthenticationInformation(
            request_id=reg.request_id, wallet_id=reg.wallet_id, certificate=cert,
            card_sealed=crypto.seal(wallet[1], authenticators.pack_account(
                sealed.pan, sealed.expiry), context),
            signing_key_sealed=crypto.seal(wallet[1], user_key, context),
            extra=extra)
        page = CAContents(reg.request_id, contents.registered(cert, sealed.pan))
        stored = await self.store.record(information, page, now)
        log.info("ca: certificate %s issued to %s at %s (%s)", cert.serial, reg.user_id,
                 reg.wallet_id, cert.brand)
        await self._send(*stored)

    async def _reject(self, reg: CARegistration, reason: str) -> None:
        log.info("ca: registration %s rejected: %s", reg.request_id, reason)
        await self.ctx.emit(CA_CONTENTS, CAContents(reg.request_id, contents.rejected(reason)),
                            reg.request_id)

    async def _send(self, information: AuthenticationInformation, page: CAContents) -> None:
        await self.ctx.emit(CA_CONTENTS, information, information.request_id)
        await self.ctx.emit(CA_CONTENTS, page, page.request_id)


def declare(ctx: AgentContext, ca: CA) -> None:
    """Only the relay registers (it seals the terminal's card data to the CA)."""
    ctx.handle(REGISTRATIONS, ca.on_registration, types=(CARegistration,), senders=("relay",))


def register(ctx: AgentContext) -> None:
    """Declare the registration handler; the issuance record opens on first use and closes
    when the worker stops."""
    ca = CA(ctx, CAStore(ctx.settings.data_dir / STORE_FILE,
                          synchronous=ctx.settings.sqlite_synchronous))
    declare(ctx, ca)
    ctx.on_stop(ca.store.close)
