"""What the wallet verifies before it acts, as functions of their inputs (no I/O).

Each check returns the verified value or raises ``Refused`` with a short reason that is safe
to show and log (never a card number, key or password).

- The shop's payment information (⑥): signed by the shop it names, for this transaction, and
  designating this wallet server ([d:302]; R9, R42 anti-spoofing).
- The approval response (⑫): signed by the payment gateway, for this transaction, wallet,
  shop and amount (the shop only carries it and cannot forge it).
- The authentication information (claim 12): a certificate the CA issued for this wallet,
  with the card and the matching payment key sealed to this wallet.
"""

from __future__ import annotations

import msgpack

from agents.wallet.store import Card, User
from kessai import authenticators, certificates, crypto, envelope
from kessai.errors import IntegrityError, KessaiError
from kessai.keys import Registry
from protocols.sealed import wallet_enrol_context
from schemas.relay import ApprovalResponse, AuthenticationInformation, PaymentInformation

GATEWAY = "gateway"
CA = "ca"


class Refused(IntegrityError):
    """A verified message whose content the wallet will not act on."""

    code = "wallet_refused"


def payment_information(raw: bytes, registry: Registry, wallet_id: str, txn_id: str
                        ) -> tuple[PaymentInformation, envelope.Envelope]:
    try:
        opened = envelope.open_record(raw, registry)
    except KessaiError as exc:
        raise Refused(f"payment information cannot be verified ({exc.code})") from None
    info = opened.message
    if not isinstance(info, PaymentInformation):
        raise Refused(f"expected payment information, got {opened.envelope.type}")
    if opened.envelope.sender != info.shop_id:
        raise Refused(f"payment information for {info.shop_id} signed by "
                      f"{opened.envelope.sender}")
    if info.txn_id != txn_id:
        raise Refused("payment information is for another transaction")
    if wallet_id not in info.usable_wallets:
        raise Refused(f"the shop does not accept wallet server {wallet_id}")
    if info.amount != info.content.amount:
        # The user confirms the items' total; the gateway charges ``amount``: they must agree.
        raise Refused(f"amount {info.amount} is not the items' total {info.content.amount}")
    return info, opened.envelope


def same_payment_information(a: bytes, b: bytes) -> bool:
    """True if two envelopes carry the same body (a shop may re-sign on redelivery)."""
    try:
        return envelope.decode(a).body == envelope.decode(b).body
    except KessaiError:
        return False


def approval_response(raw: bytes, registry: Registry, info: PaymentInformation,
                      wallet_id: str) -> ApprovalResponse:
    try:
        opened = envelope.open_record(raw, registry)
    except KessaiError as exc:
        raise Refused(f"approval response cannot be verified ({exc.code})") from None
    response = opened.message
    if not isinstance(response, ApprovalResponse) or opened.envelope.sender != GATEWAY:
        raise Refused(f"{opened.envelope.type} from {opened.envelope.sender} is not the "
                      "gateway's approval response")
    if (response.txn_id, response.wallet_id, response.shop_id) != (
            info.txn_id, wallet_id, info.shop_id):
        raise Refused("approval response is for another transaction, wallet or shop")
    if response.approved and response.amount != info.amount:
        raise Refused(f"approval for {response.amount}, the payment is {info.amount}")
    return response


def enrolment(msg: AuthenticationInformation, registry: Registry, seal_private: bytes,
              now_ms: int) -> tuple[User, Card]:
    """The user record (password hash only for a new user, see ``agents.wallet.agent``) and
    the card to store."""
    ca = registry.signing_key(CA)
    if ca is None:
        raise Refused("no CA key in the registry")
    cert = msg.certificate
    try:
        certificates.check(cert, ca[1], now_ms)
    except certificates.CertificateRejected as exc:
        raise Refused(str(exc)) from None
    if cert.wallet_id != msg.wallet_id:
        raise Refused(f"certificate {cert.serial} is for wallet {cert.wallet_id}")
    context = wallet_enrol_context(msg.request_id)
    try:
        pan, expiry = authenticators.unpack_account(
            crypto.open_sealed(seal_private, msg.card_sealed, context))
        key = crypto.open_sealed(seal_private, msg.signing_key_sealed, context)
        public = crypto.signing_public(key)
    except (KessaiError, msgpack.UnpackException, ValueError, KeyError, TypeError):
        raise Refused("sealed card or key cannot be opened by this wallet") from None
    if public != cert.public_key:
        raise Refused(f"payment key does not match certificate {cert.serial}")
    salt, digest = msg.extra.get("password_salt"), msg.extra.get("password_hash")
    try:
        password = (bytes.fromhex(salt), bytes.fromhex(digest)) if salt and digest else None
    except ValueError:
        raise Refused("password hash is not hex") from None
    user = User(msg.wallet_id, cert.user_id, *(password or (None, None)))
    return user, Card(msg.wallet_id, cert.user_id, cert.brand, pan, expiry, key, cert)
