"""What the parties of the mobile wake-up payment (seed 002) share.

- the predetermined command the gateway's mail carries (M7, D4; [X]: the token's spelling);
- the gateway's server certificate: issued by the CA over its fields, checked by the phone
  against its trust anchor before it sends anything (Sc1, D6);
- the HPKE ``info`` a credit request's card number and expiry are sealed with (M16): bound to
  the transaction, so a sealed card copied into another transaction does not open.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kessai import authenticators, certificates, crypto
from kessai.errors import BadSignature, IntegrityError
from schemas.wakeup import GatewayCertificate, PosCompletion

START_PAYMENT_APP = "START_PAYMENT_APP"
CERT_DOMAIN = b"kessai/gateway-certificate/v1\x00"
METHOD_NAMES = {"L": "lump sum", "I": "installments", "B": "bonus", "pB": "bonus (partial)",
                "R": "revolving"}


def credit_card_context(join_key: str) -> bytes:
    """For ``CreditRequest.card_sealed``: opens only at the credit server, for this txn."""
    return b"kessai/wakeup-credit-card/v1\x00" + join_key.encode()


def certificate_bytes(cert: GatewayCertificate) -> bytes:
    """What the CA signs for the gateway (``kessai.certificates`` under this seed's domain)."""
    return certificates.certificate_bytes(cert, CERT_DOMAIN)


def issue_certificate(ca_signing_private: bytes, cert: GatewayCertificate) -> GatewayCertificate:
    return certificates.issue(ca_signing_private, cert, CERT_DOMAIN)


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


# -- Embodiment 2: the encrypted card number (K3, K4) ------------------------------------------
CARD_AAD = b"kessai/wakeup-encrypted-card/v1"


def new_card_key() -> bytes:
    """K3 / claim 22: a fresh decryption key per transaction (AES-256-GCM) [X: the cipher]."""
    return AESGCM.generate_key(bit_length=256)


def encrypt_card(key: bytes, card_number: str, expiration: str) -> bytes:
    """``E_key(card)``: a random nonce and the AES-GCM ciphertext of the card and its expiry."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, authenticators.pack_account(card_number,
                                                                         expiration), CARD_AAD)


def decrypt_card(key: bytes, encrypted: bytes) -> tuple[str, str]:
    """``D_key(enc)``; raises :class:`CardNotDecryptable` if ``key`` is not its key."""
    try:
        raw = AESGCM(key).decrypt(encrypted[:12], encrypted[12:], CARD_AAD)
        return authenticators.unpack_account(raw)
    except (InvalidTag, ValueError, KeyError, TypeError) as exc:
        raise CardNotDecryptable(type(exc).__name__) from None


class CardNotDecryptable(IntegrityError):
    code = "card_not_decryptable"


def encrypted_card_ref(encrypted: bytes) -> str:
    """The key both the key distribution and the POS's credit request are keyed by, so they
    meet on one partition of the credit server (a digest: the ciphertext is not a key)."""
    return hashlib.sha256(encrypted).hexdigest()[:32]


def credit_key_context(encrypted: bytes) -> bytes:
    """For ``KeyDistribution.key_sealed``: opens only at the credit server, for this card."""
    return b"kessai/wakeup-card-key/v1\x00" + encrypted_card_ref(encrypted).encode()


def reply_password_context(request_ref: str) -> bytes:
    """For ``ConfirmationReply.password_sealed``: opens only at the gateway, for this request."""
    return b"kessai/wakeup-reply-password/v1\x00" + request_ref.encode()


def takes_completion(number: str, outcome: str, completion: PosCompletion) -> bool:
    """Whether a POS sale or a web order that holds transaction ``number`` (or none yet) and
    ``outcome`` (or none yet) takes ``completion`` (Sd7, P4): only once, and only for its own
    transaction number when both name one."""
    if outcome:
        return False
    theirs = completion.transaction_number
    return not (number and theirs and theirs != number)
