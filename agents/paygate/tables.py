"""The payment server's tables (seed 002, Figs. 7–10) and the method decision G6 (Se14).

User table 154a: user id → device id, card number, expiry. Issuer table 154c: card-number
ranges → issuer code. Merchant table 154d: (merchant code, issuer code) → allowed methods.
Everything here is pure and loaded once from the gateway's key file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METHODS = ("L", "I", "B", "pB", "R")  # lump sum, installments, bonus, partial bonus, revolving


@dataclass(frozen=True)
class User:
    user_id: str
    device_id: str
    card_number: str
    expiration: str

    def __repr__(self) -> str:  # never print the card
        return f"User({self.user_id!r}, device {self.device_id!r})"


@dataclass(frozen=True)
class IssuerRange:
    low: str
    high: str
    issuer_code: str
    issuer_name: str

    def contains(self, card_number: str) -> bool:
        """Compared on as many leading digits as each bound has (Fig. 9 mixes lengths)."""
        if not card_number.isdigit():
            return False
        head_low, head_high = card_number[:len(self.low)], card_number[:len(self.high)]
        return (len(head_low) == len(self.low) and int(head_low) >= int(self.low)
                and len(head_high) == len(self.high) and int(head_high) <= int(self.high))


@dataclass(frozen=True)
class MerchantRow:
    merchant_code: str
    merchant_name: str
    issuer_code: str
    methods: tuple[str, ...]


@dataclass(frozen=True)
class Tables:
    users: Mapping[str, User]
    issuers: tuple[IssuerRange, ...]
    merchants: tuple[MerchantRow, ...]
    credit_servers: Mapping[str, str]  # issuer code → the credit server's actor id

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Tables:
        users = {uid: User(uid, str(u["device_id"]), str(u["card_number"]),
                           str(u["expiration"])) for uid, u in cfg.get("users", {}).items()}
        issuers = tuple(IssuerRange(*map(str, row)) for row in cfg.get("issuers", []))
        merchants = tuple(MerchantRow(str(c), str(n), str(i), tuple(m))
                          for c, n, i, m in cfg.get("merchants", []))
        for row in merchants:
            unknown = set(row.methods) - set(METHODS)
            if unknown:
                raise ValueError(f"merchant {row.merchant_code}: unknown methods {unknown}")
        return cls(users, issuers, merchants, dict(cfg.get("credit_servers", {})))

    def merchant_known(self, merchant_code: str) -> bool:
        return any(r.merchant_code == merchant_code for r in self.merchants)

    def merchant_name(self, merchant_code: str) -> str:
        for r in self.merchants:
            if r.merchant_code == merchant_code:
                return r.merchant_name
        return merchant_code


def issuer_of(tables: Tables, card_number: str) -> IssuerRange | None:
    """The issuer whose range in table 154c holds the card (the first that does)."""
    for rng in tables.issuers:
        if rng.contains(card_number):
            return rng
    return None


def allowed_methods(tables: Tables, merchant_code: str, issuer_code: str) -> tuple[str, ...]:
    """Table 154d's methods for (merchant, issuer), in L, I, B, pB, R order; () if no row."""
    for row in tables.merchants:
        if row.merchant_code == merchant_code and row.issuer_code == issuer_code:
            return tuple(m for m in METHODS if m in row.methods)
    return ()


def methods_for(tables: Tables, user_id: str, merchant_code: str) -> tuple[str, ...] | str:
    """G6 (Se14): user id → card (154a) → issuer (154c) → methods (154d); or why none."""
    user = tables.users.get(user_id)
    if user is None:
        return "unknown_user"
    issuer = issuer_of(tables, user.card_number)
    if issuer is None:
        return "unknown_card_range"
    methods = allowed_methods(tables, merchant_code, issuer.issuer_code)
    return methods or "no_payment_method"
