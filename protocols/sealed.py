"""What is sealed to a wallet server or to the CA, and the HPKE ``info`` it is bound to.

The sealer and the opener are different agents, so both read it from here:

- ``WalletLogin.password_sealed`` (relay → wallet): the password as UTF-8, sealed to the wallet
  server with ``wallet_password_context(txn_id)``;
- ``AuthenticationInformation.card_sealed`` and ``signing_key_sealed`` (CA → wallet, through
  the relay): ``kessai.authenticators.pack_account(pan, expiry)`` and the user's raw 32-byte
  Ed25519 payment key, both sealed to the wallet server with ``wallet_enrol_context(request_id)``;
- ``CARegistration.card_sealed`` (relay → CA): ``pack_registration(pan, expiry, password)``
  sealed to the CA with ``ca_card_context(request_id)``. ``pack_account(pan, expiry)`` is also
  accepted (no password: the user gets no login password at a wallet that does not know them).
  The password, if any, is the one the user chose for their personal wallet; the CA keeps only
  its salted hash, which it passes on to the wallet.

Binding the context to the transaction (or enrolment request) means a sealed box copied into
another transaction does not open (spec R43: the relay only forwards, it cannot reuse).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack


def wallet_password_context(txn_id: str) -> bytes:
    """For the login password of one payment procedure (⑨→⑩)."""
    return b"kessai/wallet-password/v1\x00" + txn_id.encode()


def wallet_enrol_context(request_id: str) -> bytes:
    """For the card and payment key the CA sends to the wallet in one enrolment (claim 12)."""
    return b"kessai/wallet-enrol/v1\x00" + request_id.encode()


def ca_card_context(request_id: str) -> bytes:
    """For ``CARegistration.card_sealed``: opens only at the CA, only for this enrolment
    request."""
    return b"kessai/ca-card/v1\x00" + request_id.encode()


@dataclass(frozen=True)
class Registration:
    """The sealed part of an enrolment; nothing of it appears in ``repr``."""

    pan: str = field(repr=False)
    expiry: str = field(repr=False)
    password: str = field(default="", repr=False)


def pack_registration(pan: str, expiry: str, password: str = "") -> bytes:
    fields = {"pan": pan, "expiry": expiry}
    if password:
        fields["password"] = password
    return msgpack.packb(fields)


def unpack_registration(raw: bytes) -> Registration:
    """Raises ValueError (or msgpack's errors) if ``raw`` is not a registration."""
    m = msgpack.unpackb(raw, raw=False)
    if not isinstance(m, dict) or not isinstance(m.get("pan"), str) \
            or not isinstance(m.get("expiry"), str) \
            or not isinstance(m.get("password", ""), str):
        raise ValueError("sealed registration must hold pan, expiry and optionally password")
    return Registration(m["pan"], m["expiry"], m.get("password", ""))


__all__ = ["Registration", "ca_card_context", "pack_registration", "unpack_registration",
           "wallet_enrol_context", "wallet_password_context"]
