"""Finding card numbers in bytes (spec R20): a known number anywhere, or any standalone run of
13–19 digits that passes the Luhn check."""

from __future__ import annotations

import re
from collections.abc import Iterable

from protocols.cards import luhn_ok

# A run of 13–19 digits standing alone: not the digits that open a hex message id
# ("9470740635774477a5fd…") nor the fraction of a float (faust's "woke up too late, with a
# drift of +0.0076069360002293" on a busy machine), which pass the Luhn check often enough to
# fail a busy run.
DIGIT_RUN = re.compile(rb"(?<![0-9A-Za-z.])\d{13,19}(?![0-9A-Za-z])")

# Kinds of actor that must never see a card number (the shop side and the user's devices).
CARD_BLIND_READERS = frozenset({"shop", "pos", "terminal", "relay", "phone", "device"})


def card_numbers_in(data: bytes, known: Iterable[str] = ()) -> set[str]:
    """Every card number in ``data``: each of ``known`` that occurs, and every Luhn-valid
    standalone digit run."""
    found = {p for p in known if p.encode() in data}
    found |= {m.group().decode() for m in DIGIT_RUN.finditer(data) if luhn_ok(m.group().decode())}
    return found


def masked(pan: str) -> str:
    """A card number as a report may show it: the last four digits only."""
    return "…" + pan[-4:]
