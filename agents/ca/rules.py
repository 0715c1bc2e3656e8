"""What the CA checks before it certifies a card (pure functions; [d:166] "performs
authentication of the user"). The card checks are the ones the FI host applies
(``protocols.cards``): the CA does not certify a number that could never be charged.
"""

from __future__ import annotations

from protocols.cards import is_expired, pan_well_formed

INVALID_CARD = "invalid_card"
EXPIRED_CARD = "expired_card"
BRAND_MISMATCH = "brand_mismatch"

# Issuer identification number prefixes of the common brands (ISO/IEC 7812, public lists).
_PREFIXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("amex", ("34", "37")),
    ("jcb", tuple(str(n) for n in range(3528, 3590))),
    ("diners", ("36", "38", "300", "301", "302", "303", "304", "305")),
    ("discover", ("6011", "65", *(str(n) for n in range(644, 650)))),
    ("mastercard", (*(str(n) for n in range(51, 56)), *(str(n) for n in range(2221, 2721)))),
    ("visa", ("4",)),
)


def brand_of(pan: str) -> str | None:
    """The card brand a number's prefix names, or None if the prefix is not a known one."""
    for brand, prefixes in _PREFIXES:
        if pan.startswith(prefixes):
            return brand
    return None


def registration_problem(pan: str, expiry: str, brand: str, now_ms: int) -> str | None:
    """Why this card cannot be certified (None: it can). Reasons name no card data."""
    if not pan_well_formed(pan):
        return INVALID_CARD
    if is_expired(expiry, now_ms):
        return EXPIRED_CARD
    detected = brand_of(pan)
    if brand and detected is not None and detected != brand.strip().lower():
        return BRAND_MISMATCH
    return None


def certified_brand(pan: str, brand: str) -> str:
    """The brand the certificate names: the one registered, else the one the number shows."""
    return brand.strip().lower() or brand_of(pan) or "card"
