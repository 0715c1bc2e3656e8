"""User certificates issued by the CA (seeds 000/001, SET-style): an Ed25519 signature by the
CA over the certificate's fields. The payment gateway checks them before any settlement (R15,
R41); the wallet server keeps them in the user's personal wallet."""

from __future__ import annotations

import dataclasses

import msgpack

from kessai import crypto
from kessai.errors import BadSignature, IntegrityError
from schemas.codec import to_body
from schemas.relay import Certificate

DOMAIN = b"kessai/certificate/v1\x00"


def certificate_bytes(cert: Certificate) -> bytes:
    return DOMAIN + msgpack.packb(to_body(dataclasses.replace(cert, ca_signature=b"")),
                                  use_bin_type=True)


def issue(ca_signing_private: bytes, cert: Certificate) -> Certificate:
    return dataclasses.replace(cert, ca_signature=crypto.sign(ca_signing_private,
                                                               certificate_bytes(cert)))


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
