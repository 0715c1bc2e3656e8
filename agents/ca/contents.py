"""The CA's tagged contents for the terminal, converted by the relay (claim 13). They never
hold the card number: at most its last four digits."""

from __future__ import annotations

from html import escape

from schemas.relay import Certificate


def _tag(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value), quote=False)}</{name}>"


def registered(cert: Certificate, pan: str) -> str:
    return (_tag("Result", "registered") + _tag("Serial", cert.serial)
            + _tag("Brand", cert.brand) + _tag("CardEnding", pan[-4:])
            + _tag("Wallet", cert.wallet_id) + _tag("User", cert.user_id))


def rejected(reason: str) -> str:
    return _tag("Result", "rejected") + _tag("Reason", reason)
