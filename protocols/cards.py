"""Card-number and expiry rules (pure functions): the FI host declines, and the CA refuses to
certify, a number that is not well formed or a card that has expired.

Errors and results never carry the number itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_EXPIRY = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def luhn_ok(pan: str) -> bool:
    """True if ``pan`` is ASCII digits whose Luhn (mod 10) check digit is right."""
    # isascii: str.isdigit alone accepts "²" or Arabic-Indic digits, which int() may reject.
    if not pan or not (pan.isascii() and pan.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed(pan)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def pan_well_formed(pan: str) -> bool:
    """13–19 digits (ISO/IEC 7812 card numbers) with a valid Luhn check digit."""
    return 13 <= len(pan) <= 19 and luhn_ok(pan)


def parse_expiry(expiry: str) -> tuple[int, int] | None:
    """``"YYYY-MM"`` → ``(year, month)``, or None if it is not that shape."""
    m = _EXPIRY.fullmatch(expiry)
    return (int(m.group(1)), int(m.group(2))) if m else None


def is_expired(expiry: str, now_ms: int) -> bool:
    """A card is good through its expiry month; expired once the UTC month is later."""
    parsed = parse_expiry(expiry)
    if parsed is None:
        return True
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    return parsed < (now.year, now.month)


__all__ = ["is_expired", "luhn_ok", "pan_well_formed", "parse_expiry"]
