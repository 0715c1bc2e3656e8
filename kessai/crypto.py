"""Signatures, sealing and authenticators: the only module that touches key material.

- Ed25519 signs every envelope and the user's authenticator over a 2nd request (seed 003 cl. 10).
- HPKE (RFC 9180, X25519 KEM) seals secrets to the settlement server or issuer; the ``info``
  string binds a sealed box to its order and field, so it cannot be pasted into another order.
- HMAC-SHA256 makes the shared-key authenticators of seed 003 cl. 7 (settlement → shop) and
  cl. 11 (settlement → user).
- scrypt stores passwords as salted hashes (seed 003 cl. 13).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from kessai.errors import BadSignature, SealError

SEAL_SUITE_X25519 = "hpke-x25519-sha256-aes128gcm"
_SUITES = {
    SEAL_SUITE_X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
}


# Key objects are built once per key, not once per signature (issue 6 item 4: building an
# Ed25519 private key object cost more than the signature itself in the terminal's profile).
_signer = functools.lru_cache(maxsize=1024)(Ed25519PrivateKey.from_private_bytes)
_verifier = functools.lru_cache(maxsize=4096)(Ed25519PublicKey.from_public_bytes)
_opener = functools.lru_cache(maxsize=256)(X25519PrivateKey.from_private_bytes)


def new_signing_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes_raw()


def signing_public(private: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def sign(private: bytes, message: bytes) -> bytes:
    return _signer(private).sign(message)


def verify(public: bytes, signature: bytes, message: bytes) -> None:
    """Raise BadSignature unless ``signature`` is valid for ``message``."""
    try:
        _verifier(public).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise BadSignature("signature does not verify") from exc


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


def new_seal_key() -> bytes:
    return X25519PrivateKey.generate().private_bytes_raw()


def seal_public(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def seal(public: bytes, plaintext: bytes, info: bytes, suite: str = SEAL_SUITE_X25519) -> bytes:
    """Seal ``plaintext`` so only the holder of the matching private key can open it."""
    return _suite(suite).encrypt(plaintext, X25519PublicKey.from_public_bytes(public), info=info)


def open_sealed(private: bytes, sealed: bytes, info: bytes,
                suite: str = SEAL_SUITE_X25519) -> bytes:
    try:
        return _suite(suite).decrypt(sealed, _opener(private), info=info)
    except Exception as exc:  # the binding raises several types; all mean "cannot open"
        raise SealError("sealed field cannot be opened with this key and context") from exc


def _suite(name: str) -> hpke.Suite:
    try:
        return _SUITES[name]
    except KeyError:
        raise SealError(f"unknown sealing suite {name!r}; known: {sorted(_SUITES)}") from None


def mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def mac_ok(key: bytes, message: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(mac(key, message), tag)


def new_secret(n: int = 32) -> bytes:
    return os.urandom(n)


_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return salt, digest


def password_ok(password: str, salt: bytes, digest: bytes) -> bool:
    return hmac.compare_digest(hash_password(password, salt)[1], digest)
