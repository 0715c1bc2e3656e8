"""User authentication before settlement: seed 003 cl. 10, 12, 13, 15 (spec R18/R19)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agents.settlement.userauth import SettlementSecrets, account_for, check_second
from kessai import authenticators, crypto, keys
from kessai.money import Money
from schemas.v1 import LineItem, OrderContent, SecondRequest
from sim import devkeys

KEY = "shop-1/o1"
CONTENT = OrderContent([LineItem("XXXX", "pb", 500, 1)], "JPY", 25, 525)


@pytest.fixture(scope="module")
def kd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


@pytest.fixture(scope="module")
def secrets(kd: Path) -> SettlementSecrets:
    k = keys.load_actor(kd, "settlement")
    assert k.seal_private
    return SettlementSecrets(k.seal_private, k.secrets["users"], k.secrets["held_accounts"],
                             k.secrets["shop_mac"], k.secrets["user_mac"])


def wallet(kd: Path, user: str) -> dict:  # type: ignore[type-arg]
    return keys.load_actor(kd, "terminal").secrets["wallets"][user]  # type: ignore[no-any-return]


def sealed_account(kd: Path, pan: str, key: str = KEY) -> bytes:
    pub = keys.load_registry(kd).sealing["settlement"][1]
    return crypto.seal(pub, authenticators.pack_account(pan, "2031-12"),
                       authenticators.account_context(key))


def signed_second(kd: Path, **changes: object) -> SecondRequest:
    s = SecondRequest("shop-1", "o1", "sess", "alice", CONTENT, Money(525, "JPY"), "signature",
                      account_sealed=sealed_account(kd, "4111111111111111"))
    sig = crypto.sign(bytes.fromhex(wallet(kd, "alice")["signing"]),
                      authenticators.second_signing_bytes(s))
    return dataclasses.replace(s, **{"user_authenticator": sig, **changes})  # type: ignore[arg-type]


def password_second(kd: Path, password: str, user: str = "bob",
                    account: bytes | None = b"") -> SecondRequest:
    pub = keys.load_registry(kd).sealing["settlement"][1]
    return SecondRequest("shop-1", "o1", "sess", user, CONTENT, Money(525, "JPY"), "password",
                         account_sealed=sealed_account(kd, "5555555555554444")
                         if account == b"" else account,
                         password_sealed=crypto.seal(pub, password.encode(),
                                                     authenticators.password_context(KEY)))


def test_signature_authenticator_verifies(kd: Path, secrets: SettlementSecrets) -> None:
    assert check_second(signed_second(kd), "terminal", KEY, keys.load_registry(kd),
                        secrets) is None


def test_one_altered_field_fails_the_signature(kd: Path, secrets: SettlementSecrets) -> None:
    altered = signed_second(kd, amount=Money(526, "JPY"))
    assert check_second(altered, "terminal", KEY, keys.load_registry(kd), secrets) == "auth"


def test_missing_signature_fails(kd: Path, secrets: SettlementSecrets) -> None:
    s = signed_second(kd, user_authenticator=None)
    assert check_second(s, "terminal", KEY, keys.load_registry(kd), secrets) == "auth"


def test_right_password_passes_and_wrong_password_fails(kd: Path,
                                                         secrets: SettlementSecrets) -> None:
    reg = keys.load_registry(kd)
    assert check_second(password_second(kd, "bob-dev-password"), "terminal", KEY, reg,
                        secrets) is None
    assert check_second(password_second(kd, "guess"), "terminal", KEY, reg, secrets) == "auth"


def test_channel_method_needs_an_authenticated_terminal_principal(
        kd: Path, secrets: SettlementSecrets) -> None:
    s = SecondRequest("shop-1", "o1", "sess", "carol", CONTENT, Money(525, "JPY"), "channel",
                      account_sealed=sealed_account(kd, "4012888888881881"))
    reg = keys.load_registry(kd)
    assert check_second(s, "terminal", KEY, reg, secrets) is None
    assert check_second(s, "shop-1", KEY, reg, secrets) == "auth"


def test_a_server_wallet_speaks_only_for_the_users_whose_wallets_it_holds(
        kd: Path, secrets: SettlementSecrets) -> None:
    """Seed 004: a wallet sender authenticates a channel 2nd request only for a user whose
    record names it; a user with no wallets listed is refused (not an error)."""
    s = SecondRequest("shop-1", "o1", "sess", "carol", CONTENT, Money(525, "JPY"), "channel",
                      account_sealed=sealed_account(kd, "4012888888881881"))
    reg = keys.load_registry(kd)
    carol = {k: v for k, v in secrets.users["carol"].items() if k != "wallets"}
    for record, expected in (({**carol, "wallets": ["wallet-a"]}, None),
                             ({**carol, "wallets": ["wallet-b"]}, "auth"),
                             (carol, "auth")):
        held = dataclasses.replace(secrets, users={**secrets.users, "carol": record})
        assert check_second(s, "wallet-a", KEY, reg, held) == expected


def test_a_user_cannot_downgrade_to_another_method(kd: Path, secrets: SettlementSecrets) -> None:
    s = SecondRequest("shop-1", "o1", "sess", "alice", CONTENT, Money(525, "JPY"), "channel",
                      account_sealed=sealed_account(kd, "4111111111111111"))
    assert check_second(s, "terminal", KEY, keys.load_registry(kd), secrets) == "auth"


def test_held_account_settles_without_a_card_number_in_the_request(
        kd: Path, secrets: SettlementSecrets) -> None:
    s = password_second(kd, "dave-dev-password", user="dave", account=None)
    assert check_second(s, "terminal", KEY, keys.load_registry(kd), secrets) is None
    assert account_for(s, KEY, secrets) == ("4242424242424242", "2032-01")


def test_no_account_and_none_held_is_an_account_problem(kd: Path,
                                                        secrets: SettlementSecrets) -> None:
    s = password_second(kd, "bob-dev-password", account=None)
    assert check_second(s, "terminal", KEY, keys.load_registry(kd), secrets) == "account"


def test_account_sealed_for_another_order_is_refused(kd: Path,
                                                      secrets: SettlementSecrets) -> None:
    s = password_second(kd, "bob-dev-password",
                        account=sealed_account(kd, "5555555555554444", key="shop-1/other"))
    assert check_second(s, "terminal", KEY, keys.load_registry(kd), secrets) == "account"
