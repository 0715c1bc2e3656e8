"""What the relay seals to the CA at enrolment, and the context it seals with (claim 12,
[d:166]: "personal information about an account number, card number and its expiration date").

``CARegistration.card_sealed`` = HPKE seal to the CA's sealing key
(``ctx.registry.sealing["ca"]``) of ``pack_registration(pan, expiry, password)`` with
``ca_card_context(request_id)``. ``kessai.authenticators.pack_account(pan, expiry)`` is also
accepted (no password: the user gets no login password at a wallet that does not know them).
The password, if any, is the one the user chose for their personal wallet; the CA keeps only
its salted hash, which it passes on to the wallet (see ``agents.wallet.agent``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack


def ca_card_context(request_id: str) -> bytes:
    """HPKE ``info`` for ``CARegistration.card_sealed``: opens only at the CA, only for this
    enrolment request."""
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


__all__ = ["Registration", "ca_card_context", "pack_registration", "unpack_registration"]
