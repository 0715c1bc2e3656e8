"""The FI host's approval check as pure functions (seed 003 [0017], spec R25).

"代金の承認確認（クレジット決済の場合の与信確認や銀行決済の残高確認）": the FI host approves
or declines a price by a credit check (card) or balance check (bank). Here both are one
check: what the account already committed plus this amount must stay within its limit.

Nothing in this module does I/O, so the ledger (and an audit that recomputes a decision)
gets the same answer for the same inputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from kessai.money import Money
from protocols.cards import is_expired, pan_well_formed, parse_expiry

APPROVED = "approved"
UNREADABLE_ACCOUNT = "unreadable_account"
INVALID_ACCOUNT = "invalid_account"
INVALID_AMOUNT = "invalid_amount"
UNKNOWN_ACCOUNT = "unknown_account"
EXPIRY_MISMATCH = "expiry_mismatch"
EXPIRED_CARD = "expired_card"
CURRENCY_MISMATCH = "currency_mismatch"
OVER_LIMIT = "over_limit"

DECLINE_REASONS = (UNREADABLE_ACCOUNT, INVALID_ACCOUNT, INVALID_AMOUNT, UNKNOWN_ACCOUNT,
                   EXPIRY_MISMATCH, EXPIRED_CARD, CURRENCY_MISMATCH, OVER_LIMIT)



@dataclass(frozen=True)
class Account:
    """One account the FI host holds: card (or bank account) number, expiry, credit limit.

    ``pan`` is left out of ``repr`` so an account in a log line or a failed assertion never
    prints a card number.
    """

    pan: str = field(repr=False)
    expiry: str  # "YYYY-MM", the card is valid through the end of that month
    limit_minor: int
    currency: str

    def __post_init__(self) -> None:
        # Errors name the field, never its value: the value may be a card number.
        if parse_expiry(self.expiry) is None:
            raise ValueError("account expiry must look like YYYY-MM")
        if isinstance(self.limit_minor, bool) or not isinstance(self.limit_minor, int):
            raise ValueError("account limit must be an integer of minor units")
        Money(0, self.currency)  # validates the ISO 4217 code

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Account:
        """From the issuer's key-set record ``{pan, expiry, limit, currency}`` (sim/devkeys.py)."""
        return cls(str(record["pan"]), str(record["expiry"]), record["limit"],
                   str(record["currency"]))


@dataclass(frozen=True)
class Decision:
    """The FI outcome for one order: approved with an auth code, or declined with a reason."""

    approved: bool
    reason: str
    auth_code: str = ""


def auth_code(join_key: str, amount: Money, used_minor: int, now_ms: int) -> str:
    """A six-character approval code, derived (not random) so ``decide`` stays pure.

    The card number is deliberately not an input: the code leaves the FI domain.
    """
    digest = hashlib.sha256(
        f"kessai/auth-code/v1\x00{join_key}\x00{amount.minor}\x00{amount.currency}"
        f"\x00{used_minor}\x00{now_ms}".encode()).hexdigest()
    return digest[:6].upper()


def decide(account: Account | None, pan: str | None, expiry_on_request: str | None,
           amount: Money, used_minor: int, now_ms: int, *, join_key: str = "") -> Decision:
    """Approve or decline one authorization (seed 003 [0017]: credit / balance check).

    ``account`` is what the ledger found for ``pan`` (None if nothing); ``pan`` is None when
    the sealed account info could not be opened. ``used_minor`` is the sum of this account's
    approved amounts so far. Checks run from "is this request readable at all" to "does the
    account allow it", so the reason names the first thing that is wrong.
    """
    if pan is None:
        return Decision(False, UNREADABLE_ACCOUNT)
    if not pan_well_formed(pan):
        return Decision(False, INVALID_ACCOUNT)
    # A zero or negative "charge" would raise the available limit: never approve one.
    if amount.minor <= 0:
        return Decision(False, INVALID_AMOUNT)
    if account is None or account.pan != pan:
        return Decision(False, UNKNOWN_ACCOUNT)
    # Compared before expiry so a caller who does not know the expiry learns nothing of it.
    if expiry_on_request != account.expiry:
        return Decision(False, EXPIRY_MISMATCH)
    if is_expired(account.expiry, now_ms):
        return Decision(False, EXPIRED_CARD)
    if amount.currency != account.currency:
        return Decision(False, CURRENCY_MISMATCH)
    if used_minor + amount.minor > account.limit_minor:
        return Decision(False, OVER_LIMIT)
    return Decision(True, APPROVED, auth_code(join_key, amount, used_minor, now_ms))
