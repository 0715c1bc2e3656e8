"""The development world `kessai keys init` creates: shops, users with test cards, FI accounts.

All card numbers here are public test numbers (Luhn-valid, never issued to a person).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DevCard:
    alias: str
    pan: str
    expiry: str  # "YYYY-MM"
    limit_minor: int
    currency: str = "JPY"


@dataclass(frozen=True)
class DevUser:
    user_id: str
    auth: str  # "signature" (cl. 10), "channel" (cl. 12), "password" (cl. 13)
    cards: tuple[DevCard, ...] = ()
    password: str | None = None
    held: bool = False  # account held at the settlement server (cl. 15)


SHOPS: tuple[str, ...] = ("shop-1", "shop-2")

USERS: tuple[DevUser, ...] = (
    DevUser("alice", "signature", (
        DevCard("main", "4111111111111111", "2031-12", 1_000_000),
        DevCard("expired", "4000000000000002", "2020-01", 1_000_000),
        DevCard("typo", "4111111111111112", "2031-12", 1_000_000),
    )),
    DevUser("bob", "password", (DevCard("main", "5555555555554444", "2030-06", 2_000),),
            password="bob-dev-password"),
    DevUser("carol", "channel", (DevCard("main", "4012888888881881", "2029-03", 500_000),)),
    DevUser("dave", "password", (DevCard("main", "4242424242424242", "2032-01", 300_000),),
            password="dave-dev-password", held=True),
)

# Cards known to the issuer that no dev user holds (for tests of unknown-account paths).
EXTRA_ACCOUNTS: tuple[DevCard, ...] = (DevCard("spare", "6011111111111117", "2030-01", 50_000),)

SERVICE_ACTORS: tuple[str, ...] = ("settlement", "issuer", "terminal", "operator", "relay",
                                   "gateway", "ca", "archiver")

# Seeds 000/001: server wallets (one per settlement-institution group) and who has a personal
# wallet where; the relay's preset wallet per user ([d:194]).
WALLETS: tuple[str, ...] = ("wallet-a", "wallet-b")


@dataclass(frozen=True)
class WalletAccount:
    wallet_id: str
    user_id: str
    password: str
    brand: str
    pan: str
    expiry: str


WALLET_ACCOUNTS: tuple[WalletAccount, ...] = (
    WalletAccount("wallet-a", "alice", "alice-wallet-pw", "visa", "4111111111111111", "2031-12"),
    WalletAccount("wallet-a", "carol", "carol-wallet-pw", "visa", "4012888888881881", "2029-03"),
    WalletAccount("wallet-b", "carol", "carol-wallet-pw", "mastercard", "5555555555554444",
                  "2030-06"),
    WalletAccount("wallet-b", "bob", "bob-wallet-pw", "mastercard", "5555555555554444",
                  "2030-06"),
)
RELAY_PRESET_WALLET: dict[str, str] = {"alice": "wallet-a"}


def user(user_id: str) -> DevUser:
    for u in USERS:
        if u.user_id == user_id:
            return u
    raise KeyError(user_id)


@dataclass
class Catalogue:
    """Products the dev shops sell (the Fig. 5 order of seed 003 among them)."""

    items: dict[str, tuple[str, int]] = field(default_factory=lambda: {
        "XXXX": ("ピーナッツバター", 500),
        "YYYY": ("グレープゼリー", 600),
        "TEA1": ("Sencha 100g", 1_200),
        "MUG1": ("Mug", 1_800),
    })
