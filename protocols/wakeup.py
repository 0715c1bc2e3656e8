"""What the parties of the mobile wake-up payment (seed 002) share.

- the predetermined command the gateway's mail carries (M7, D4; [X]: the token's spelling);
- the gateway's server certificate: issued by the CA over its fields, checked by the phone
  against its trust anchor before it sends anything (Sc1, D6);
- the HPKE ``info`` a credit request's card number and expiry are sealed with (M16): bound to
  the transaction, so a sealed card copied into another transaction does not open.
"""

from __future__ import annotations

import dataclasses

import msgpack

from kessai import crypto
from kessai.errors import BadSignature, IntegrityError
from schemas.codec import to_body
from schemas.wakeup import GatewayCertificate

START_PAYMENT_APP = "START_PAYMENT_APP"
CERT_DOMAIN = b"kessai/gateway-certificate/v1\x00"
METHOD_NAMES = {"L": "lump sum", "I": "installments", "B": "bonus", "pB": "bonus (partial)",
                "R": "revolving"}


def credit_card_context(join_key: str) -> bytes:
    """For ``CreditRequest.card_sealed``: opens only at the credit server, for this txn."""
    return b"kessai/wakeup-credit-card/v1\x00" + join_key.encode()


def certificate_bytes(cert: GatewayCertificate) -> bytes:
    return CERT_DOMAIN + msgpack.packb(to_body(dataclasses.replace(cert, ca_signature=b"")),
                                       use_bin_type=True)


def issue_certificate(ca_signing_private: bytes, cert: GatewayCertificate) -> GatewayCertificate:
    return dataclasses.replace(cert, ca_signature=crypto.sign(ca_signing_private,
                                                               certificate_bytes(cert)))


class GatewayNotTrusted(IntegrityError):
    code = "gateway_not_trusted"


def check_certificate(cert: GatewayCertificate, anchor_public: bytes, address: str,
                      signer: str, signer_public: bytes, now_ms: int) -> None:
    """Raise :class:`GatewayNotTrusted` unless the trust anchor issued ``cert`` for the
    address the phone dialled, it is still valid, and it certifies the key that signed the
    message carrying it (an impostor cannot present the real gateway's certificate)."""
    try:
        crypto.verify(anchor_public, cert.ca_signature, certificate_bytes(cert))
    except BadSignature:
        raise GatewayNotTrusted("the certificate is not signed by the trust anchor") from None
    if cert.address != address:
        raise GatewayNotTrusted(f"the certificate is for {cert.address}, not {address}")
    if now_ms >= cert.not_after_ms:
        raise GatewayNotTrusted("the certificate has expired")
    if cert.subject != signer or cert.public_key != signer_public:
        raise GatewayNotTrusted(f"the certificate does not certify {signer}'s key")
