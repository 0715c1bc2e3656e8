"""Certificates issued by the CA: an Ed25519 signature by the CA over the certificate's fields.

User certificates (seeds 000/001, SET-style): the payment gateway checks them before any
settlement (R15, R41); the wallet server keeps them in the user's personal wallet. The same
issue/bytes logic signs seed 002's gateway server certificate under its own ``domain``
(``protocols.wakeup``), so a signature over one kind never verifies as the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import msgpack

from kessai import crypto
from kessai.errors import BadSignature, IntegrityError
from schemas.codec import to_body
from schemas.relay import Certificate

DOMAIN = b"kessai/certificate/v1\x00"
C = TypeVar("C")


def certificate_bytes(cert: Any, domain: bytes = DOMAIN) -> bytes:
    """What the CA signs: ``domain`` then the msgpack body of ``cert`` (a certificate
    dataclass with a ``ca_signature`` field) with the signature left empty."""
    return domain + msgpack.packb(to_body(dataclasses.replace(cert, ca_signature=b"")),
                                  use_bin_type=True)


def issue(ca_signing_private: bytes, cert: C, domain: bytes = DOMAIN) -> C:
    """``cert`` signed by the CA under ``domain`` (keep one domain per kind of certificate)."""
    return dataclasses.replace(cert, ca_signature=crypto.sign(  # type: ignore[type-var]
        ca_signing_private, certificate_bytes(cert, domain)))


class CertificateRejected(IntegrityError):
    code = "certificate_rejected"


def check(cert: Certificate, ca_public: bytes, now_ms: int,
          revoked: frozenset[str] = frozenset()) -> None:
    """Raise CertificateRejected unless the CA issued ``cert`` and it is still valid."""
    try:
        crypto.verify(ca_public, cert.ca_signature, certificate_bytes(cert))
    except BadSignature:
        raise CertificateRejected("certificate is not signed by the CA") from None
    if now_ms >= cert.not_after_ms:
        raise CertificateRejected(f"certificate {cert.serial} has expired")
    if cert.serial in revoked:
        raise CertificateRejected(f"certificate {cert.serial} is revoked")
