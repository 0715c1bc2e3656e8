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
EXTRA_ACCOUNTS: tuple[DevCard, ...] = (
    DevCard("spare", "6011111111111117", "2030-01", 50_000),
    # carol's mastercard at wallet-b (seed 004): her own account, not bob's low-limit card, so
    # her purchases never depend on what bob spent before them.
    DevCard("carol-mc", "5105105105105100", "2030-06", 500_000),
)

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
    WalletAccount("wallet-b", "carol", "carol-wallet-pw", "mastercard", "5105105105105100",
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


# Seed 004: a multi-wallet client (carol, whose server wallets are wallet-a for visa and
# wallet-b for mastercard), its selector and its wallet connection modules. A module is bound
# to one server wallet; the common module of Ex 6 to both. The direct module takes the
# client's wake-ups itself (Ex 6, and the conventional module of Ex 7–12).
SELECTOR = "selector"


@dataclass(frozen=True)
class WalletModule:
    module_id: str
    client_id: str
    servers: tuple[str, ...]
    brands: tuple[str, ...] = ()  # Ex 4: the brand info the module carries
    multi: bool = False  # Ex 6: one module for several server wallets
    direct: bool = False  # takes the client's wake-ups itself (no selector): Ex 6–12
    slave_brands: tuple[tuple[str, tuple[str, ...]], ...] = ()  # 63b (Ex 11)
    slave_info: tuple[str, ...] = ()  # 64b (Ex 12)


MODULES: tuple[WalletModule, ...] = (
    WalletModule("wum-carol-a", "carol", ("wallet-a",), ("visa",)),
    WalletModule("wum-carol-b", "carol", ("wallet-b",), ("mastercard",)),
    WalletModule("wum-carol-m", "carol", ("wallet-a", "wallet-b"), multi=True),
)
SELECTOR_CLIENTS: dict[str, dict[str, object]] = {
    "carol": {"mode": "preselect",
              "modules": {"wum-carol-a": "wallet-a", "wum-carol-b": "wallet-b"},
              "brands": {"wallet-a": ["visa"], "wallet-b": ["mastercard"]}},
}
# Ex 7–12: wallet-a is carol's master; wallet-b a slave holding her mastercard certificate.
MASTERS: dict[str, dict[str, dict[str, object]]] = {
    "wallet-a": {"carol": {"slave_brands": {"wallet-b": ["mastercard"]},
                           "slave_info": ["wallet-b"], "allow": ["wallet-b"]}},
}


# One development client per example, so that every example runs over worker processes from
# the key set alone (`kessai pay --flow selector --mode MODE` against `kessai up`): a mode and
# a master/slave set-up are a client's configuration, read by the selector, the modules and
# the server wallets at start, as a deployment would configure a user's PC and wallets. Ex 1
# is carol herself; ``carol-exN`` is carol's set-up of example N, with her two accounts (visa
# at wallet-a, mastercard at wallet-b). Per mode: example number, client, the brands the shop
# offers, the simulated user's answer to a prompt (if the example asks one).
@dataclass(frozen=True)
class SelectorExample:
    n: int
    client_id: str
    brands: tuple[str, ...] = ("mastercard",)
    answer: str = ""  # the module, slave or address the user gives (Ex 2, 9, 10, 12)
    preselect: str = ""  # Ex 1: the module the user chose before paying


SELECTOR_EXAMPLES: dict[str, SelectorExample] = {
    "preselect": SelectorExample(1, "carol", ("visa", "mastercard"), preselect="wum-carol-b"),
    "ask": SelectorExample(2, "carol-ex2", answer="wum-carol-ex2-b"),
    "brand-selector": SelectorExample(3, "carol-ex3"),
    "brand-module": SelectorExample(4, "carol-ex4"),
    "brand-live": SelectorExample(5, "carol-ex5", ("visa",)),
    "multi": SelectorExample(6, "carol-ex6"),
    "proxy": SelectorExample(7, "carol-ex7"),
    "certificate": SelectorExample(8, "carol-ex8"),
    "pick-slave": SelectorExample(9, "carol-ex9", answer="wallet-b"),
    "address": SelectorExample(10, "carol-ex10", answer="wallet-b"),
    "attached-brands": SelectorExample(11, "carol-ex11"),
    "attached-slaves": SelectorExample(12, "carol-ex12", answer="wallet-b"),
}
_CARD_BRANDS = {"wallet-a": ["visa"], "wallet-b": ["mastercard"]}


def _example_setups() -> tuple[list[WalletModule], dict[str, dict[str, object]],
                               dict[str, dict[str, object]]]:
    """Modules, selector clients and (wallet-a's) master configurations of Ex 2–12."""
    mods: list[WalletModule] = []
    clients: dict[str, dict[str, object]] = {}
    masters: dict[str, dict[str, object]] = {}
    for mode, ex in SELECTOR_EXAMPLES.items():
        c = ex.client_id
        if ex.n == 1:
            continue
        if ex.n <= 5:  # a selector in front of one module per server wallet
            pair = {f"wum-{c}-a": "wallet-a", f"wum-{c}-b": "wallet-b"}
            mods += [WalletModule(m, c, (s,), tuple(_CARD_BRANDS[s])) for m, s in pair.items()]
            clients[c] = {"mode": mode, "modules": pair, "brands": dict(_CARD_BRANDS)}
        elif ex.n == 6:  # one common module, no selector
            mods.append(WalletModule(f"wum-{c}-m", c, ("wallet-a", "wallet-b"), multi=True,
                                     direct=True))
        else:  # one conventional module bound to the master, wallet-a
            mods.append(WalletModule(
                f"wum-{c}-a", c, ("wallet-a",), direct=True,
                slave_brands=(("wallet-b", ("mastercard",)),) if ex.n == 11 else (),
                slave_info=("wallet-b",) if ex.n == 12 else ()))
            masters[c] = {
                7: {"slave_brands": {"wallet-b": ["mastercard"]}},
                8: {"slave_brands": {"wallet-b": ["mastercard"]}, "strategy": "certificate"},
                9: {"slave_info": ["wallet-b"]},
                10: {"ask_address": True, "allow": ["wallet-b"]},
                11: {"allow": ["wallet-b"]},
                12: {"allow": ["wallet-b"]},
            }[ex.n]
    return mods, clients, masters


_EX_MODULES, _EX_CLIENTS, _EX_MASTERS = _example_setups()
MODULES = (*MODULES, *_EX_MODULES)
SELECTOR_CLIENTS = {**SELECTOR_CLIENTS, **_EX_CLIENTS}
MASTERS = {"wallet-a": {**MASTERS["wallet-a"], **_EX_MASTERS}}
SELECTOR_EXAMPLE_CLIENTS: tuple[str, ...] = tuple(
    ex.client_id for ex in SELECTOR_EXAMPLES.values() if ex.client_id != "carol")
# carol's two accounts, at each example client's two server wallets.
WALLET_ACCOUNTS = (*WALLET_ACCOUNTS, *(
    WalletAccount(a.wallet_id, c, a.password, a.brand, a.pan, a.expiry)
    for c in SELECTOR_EXAMPLE_CLIENTS for a in WALLET_ACCOUNTS if a.user_id == "carol"))


# -- Seed 002 (EP 1 280 115): the mobile wake-up payment's gateway tables, Figs. 7–10 -------
# Fig. 7's card numbers lie in none of Fig. 9's ranges (spec appendix), so the cards here are
# made to fall in them; user ids, passwords, device ids and the tables are the figures'.
WAKEUP_GATEWAY_ADDRESS = "https://paygate.kessai.example/pay"  # UIM area 233's URL
WAKEUP_GATEWAY_MAIL = "payment@paygate.kessai.example"  # the From of the command mail


@dataclass(frozen=True)
class WakeupUser:
    """A row of user table 154a (Fig. 7) plus the expiry the figure does not show."""

    user_id: str
    password: str
    device_id: str
    card_number: str
    expiration: str  # "YYYY-MM"
    limit_minor: int = 1_000_000


WAKEUP_USERS: tuple[WakeupUser, ...] = (
    WakeupUser("00001", "ABCDEF", "1234567", "1525000012345678", "2031-12"),  # issuer A
    WakeupUser("00002", "FEDCBA", "2234567", "1452590000123456", "2030-06"),  # issuer B
    WakeupUser("00003", "CDEFAB", "3345678", "1360012345678905", "2029-03", 1_000),  # D
    WakeupUser("00004", "GHIJKL", "1234567", "1350012345678907", "2031-12"),  # A, 2nd card
    WakeupUser("00005", "MNOPQR", "5555555", "9999000011112228", "2031-12"),  # no issuer
    WakeupUser("00006", "STUVWX", "6666666", "", ""),  # registered, no card stored (K1)
    WakeupUser("00007", "YZABCD", "7777777", "1525000011111113", "2020-01"),  # expired (K1)
)

# UIM area 233 of each phone: one (user id, password) pair per card ([0038], [0052]).
# Phone 7654321 holds user 00002's pair but is not the device registered for it.
WAKEUP_PHONES: dict[str, tuple[tuple[str, str], ...]] = {
    "1234567": (("CARD A", "00001"), ("CARD B", "00004")),
    "2234567": (("CARD A", "00002"),),
    "3345678": (("CARD A", "00003"),),
    "5555555": (("CARD A", "00005"),),
    "7654321": (("CARD A", "00002"),),
}

# Issuer table 154c (Fig. 9): card-number range (compared on as many leading digits as the
# bound has), issuer code, issuer name.
WAKEUP_ISSUERS: tuple[tuple[str, str, str, str], ...] = (
    ("1525000000", "1525059999", "2a11111", "A"),
    ("145259000", "1452590000", "2a22222", "B"),
    ("153996010", "153996010", "2s33333", "C"),
    ("13500", "13560", "2a11111", "A"),
    ("13600", "13600", "2s44444", "D"),
)

# Merchant table 154d (Fig. 10): merchant code, merchant name, issuer code, allowed methods.
WAKEUP_MERCHANTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("1111111111", "A", "2a11111", ("L", "I", "R")),
    ("2222222222", "B", "2a22222", ("L", "I", "pB", "R")),
    ("2222222222", "B", "2s44444", ("L", "B")),
    ("3333333333", "C", "2a22222", ("L", "B", "pB")),
    ("4444444444", "D", "2s33333", ("L", "R")),
)

# The POS terminals and their merchant codes.
WAKEUP_POS: dict[str, str] = {"pos-1": "1111111111", "pos-2": "2222222222"}
# Seed 002 V3: the web shops (web server 130) and their merchant codes.
WAKEUP_WEBSHOPS: dict[str, str] = {"webshop-1": "1111111111"}
