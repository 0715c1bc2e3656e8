"""What the gateway checks before it instructs a settlement host (R15, R41, R42): pure
functions of the request, the key registry, the gateway's sealing key, the time and policy.

``admit`` decides whether a forwarded record is a wallet's payment request at all (if not,
nobody can be answered: the record is dead-lettered). ``examine`` then decides whether that
request may be paid: any failure is a ``Declined`` with a reason the user may see, and no
authorization is sent (R41).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from agents.gateway.routing import GatewayPolicy, settlement_host
from kessai import authenticators, certificates, crypto, envelope
from kessai.errors import BadSignature, IntegrityError, KessaiError
from kessai.handlers import actor_kind
from kessai.keys import Registry
from kessai.money import Money
from schemas.relay import ForwardedPaymentRequest, PaymentInformation, SetPaymentRequest

NO_AMOUNT = Money(0, "XXX")  # ISO 4217 "no currency": the amount is not known

BAD_PAYMENT_INFORMATION = "bad_payment_information"
SHOP_MISMATCH = "shop_mismatch"
CERTIFICATE_REJECTED = "certificate_rejected"
CERTIFICATE_WALLET_MISMATCH = "certificate_wallet_mismatch"
BAD_USER_SIGNATURE = "bad_user_signature"
UNKNOWN_BRAND = "unknown_brand"
UNREADABLE_CARD = "unreadable_card"


class NotARequest(IntegrityError):
    """A forwarded record that does not hold a wallet's payment request."""

    code = "not_a_payment_request"


@dataclass(frozen=True)
class Accepted:
    """Checked: the settlement host may be instructed to pay ``info.amount``."""

    request: SetPaymentRequest
    info: PaymentInformation
    host: str
    pan: str = field(repr=False)
    expiry: str = field(repr=False)


@dataclass(frozen=True)
class Declined:
    reason: str
    detail: str  # for the audit trail; names no secret
    shop_id: str
    amount: Money


def admit(forwarded: ForwardedPaymentRequest, registry: Registry
          ) -> tuple[SetPaymentRequest, envelope.Envelope]:
    """The wallet's request inside a shop's forward (⑪), signed by the wallet it names.
    (That a shop forwarded it is the handler's declaration, checked before it runs.)"""
    try:
        opened = envelope.open_record(forwarded.original, registry)
    except KessaiError as exc:
        raise NotARequest(f"the forwarded request cannot be verified ({exc.code})") from None
    request = opened.message
    if not isinstance(request, SetPaymentRequest):
        raise NotARequest(f"forwarded {opened.envelope.type} is not a payment request")
    # Verified against the registry above: a sender of kind "wallet" is a wallet server of
    # the key set.
    if actor_kind(opened.envelope.sender) != "wallet" \
            or opened.envelope.sender != request.wallet_id:
        raise NotARequest(f"payment request for {request.wallet_id} signed by "
                          f"{opened.envelope.sender}")
    if request.txn_id != forwarded.txn_id:
        raise NotARequest("the forward names another transaction")
    return request, opened.envelope


def examine(request: SetPaymentRequest, forwarder: str, registry: Registry,
            seal_private: bytes, now_ms: int, policy: GatewayPolicy) -> Accepted | Declined:
    """R15/R41/R42: the shop's payment information, the forwarding shop, the certificate, the
    user's signature, the settlement host, the card — in that order; the first failure wins."""
    info, problem = _payment_information(request, registry)
    if info is None:
        return Declined(BAD_PAYMENT_INFORMATION, f"payment information {problem}",
                        request.shop_id, NO_AMOUNT)

    def declined(reason: str, detail: str) -> Declined:
        return Declined(reason, detail, info.shop_id, info.amount)

    if forwarder != info.shop_id:
        return declined(SHOP_MISMATCH, f"{forwarder} forwarded a payment for {info.shop_id}")
    cert = request.certificate
    ca = registry.signing_key("ca")
    if ca is None:
        return declined(CERTIFICATE_REJECTED, "no CA key in the registry")
    try:
        certificates.check(cert, ca[1], now_ms, policy.revoked)
    except certificates.CertificateRejected as exc:
        return declined(CERTIFICATE_REJECTED, str(exc))
    if cert.wallet_id != request.wallet_id:
        return declined(CERTIFICATE_WALLET_MISMATCH,
                        f"certificate {cert.serial} belongs to wallet {cert.wallet_id}")
    try:
        crypto.verify(cert.public_key, request.user_signature,
                      authenticators.set_request_signing_bytes(request))
    except BadSignature:
        return declined(BAD_USER_SIGNATURE,
                        f"request not signed with the key of certificate {cert.serial}")
    host = settlement_host(cert.brand, policy.hosts)
    if host is None or host not in registry.sealing:
        return declined(UNKNOWN_BRAND, f"no settlement host for brand {cert.brand!r}")
    try:
        pan, expiry = authenticators.unpack_account(crypto.open_sealed(
            seal_private, request.card_sealed,
            authenticators.gateway_card_context(request.txn_id)))
    except (KessaiError, msgpack.UnpackException, ValueError, KeyError, TypeError):
        return declined(UNREADABLE_CARD, "the sealed card cannot be opened by the gateway")
    return Accepted(request, info, host, pan, expiry)


def _payment_information(request: SetPaymentRequest, registry: Registry
                         ) -> tuple[PaymentInformation | None, str]:
    """The shop's signed payment information inside the request, or why it is not usable."""
    try:
        opened = envelope.open_record(request.payment_information, registry)
    except KessaiError as exc:
        return None, f"cannot be verified ({exc.code})"
    info = opened.message
    if not isinstance(info, PaymentInformation):
        return None, f"is a {opened.envelope.type}"
    if opened.envelope.sender != info.shop_id:  # R42: the shop cannot be spoofed
        return None, f"for {info.shop_id} is signed by {opened.envelope.sender}"
    if info.txn_id != request.txn_id:
        return None, "is for another transaction"
    if info.shop_id != request.shop_id:
        return None, f"is for shop {info.shop_id}, the request names {request.shop_id}"
    if request.wallet_id not in info.usable_wallets:
        return None, f"does not designate wallet {request.wallet_id}"
    return info, ""
