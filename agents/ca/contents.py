"""The CA's tagged contents for the terminal, converted by the relay (claim 13). They never
hold the card number: at most its last four digits."""

from __future__ import annotations

from protocols.contents import tag
from schemas.relay import Certificate


def registered(cert: Certificate, pan: str) -> str:
    return (tag("Result", "registered") + tag("Serial", cert.serial)
            + tag("Brand", cert.brand) + tag("CardEnding", pan[-4:])
            + tag("Wallet", cert.wallet_id) + tag("User", cert.user_id))


def rejected(reason: str) -> str:
    return tag("Result", "rejected") + tag("Reason", reason)
