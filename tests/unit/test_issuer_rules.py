"""The FI host's approval check (seed 003 [0017], spec R25): pure decisions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.issuer import rules
from agents.issuer.rules import Account, Decision, decide
from kessai.money import Money
from protocols.cards import is_expired, luhn_ok, pan_well_formed

PAN = "4111111111111111"  # public test number
NOW = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
       milli: int = 0) -> int:
    dt = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return int(dt.timestamp()) * 1000 + milli


def account(pan: str = PAN, expiry: str = "2031-12", limit: int = 10_000,
            currency: str = "JPY") -> Account:
    return Account(pan, expiry, limit, currency)


def yen(n: int) -> Money:
    return Money(n, "JPY")


@pytest.mark.parametrize("pan", [
    "4111111111111111", "5555555555554444", "4012888888881881", "6011111111111117",
    "4242424242424242", "378282246310005", "79927398713", "0",
])
def test_luhn_accepts_valid_check_digits(pan: str) -> None:
    assert luhn_ok(pan) is True


@pytest.mark.parametrize("pan", [
    "4111111111111112",  # last digit off by one
    "4111111111111121",  # two adjacent digits swapped
    "79927398710", "79927398719",
    "",
    "4111 1111 1111 1111",  # separators are not digits
    "4111-1111-1111-1111",
    "411111111111111a",
    "４１１１１１１１１１１１１１１１",  # full-width digits
    "²",
])
def test_luhn_rejects_wrong_check_digits_and_non_digits(pan: str) -> None:
    assert luhn_ok(pan) is False


@pytest.mark.parametrize(("pan", "ok"), [
    ("411111111117", False),  # 12 digits, Luhn-valid
    ("4111111111119", True),  # 13
    ("4111111111111111110", True),  # 19
    ("41111111111111111115", False),  # 20 digits, Luhn-valid
])
def test_pan_must_have_13_to_19_digits(pan: str, ok: bool) -> None:
    assert luhn_ok(pan) is True
    assert pan_well_formed(pan) is ok


def test_valid_request_within_limit_is_approved_with_an_auth_code() -> None:
    d = decide(account(), PAN, "2031-12", yen(1_155), used_minor=0, now_ms=NOW, join_key="s/1")
    assert d.approved is True
    assert d.reason == rules.APPROVED
    assert len(d.auth_code) == 6 and d.auth_code.isalnum()


def test_auth_code_is_deterministic_and_differs_per_order() -> None:
    a = decide(account(), PAN, "2031-12", yen(100), 0, NOW, join_key="s/1")
    again = decide(account(), PAN, "2031-12", yen(100), 0, NOW, join_key="s/1")
    other = decide(account(), PAN, "2031-12", yen(100), 0, NOW, join_key="s/2")
    assert a == again
    assert a.auth_code != other.auth_code


def test_unreadable_account_is_declined() -> None:
    d = decide(None, None, None, yen(100), 0, NOW)
    assert d == Decision(False, rules.UNREADABLE_ACCOUNT)


@pytest.mark.parametrize("pan", ["4111111111111112", "411111111117", "41111111111111111115",
                                 "4111 1111 1111 1111"])
def test_malformed_card_number_is_invalid_account(pan: str) -> None:
    # Even an account stored under the same string does not make a bad number acceptable.
    d = decide(account(pan="4111111111111111"), pan, "2031-12", yen(100), 0, NOW)
    assert d == Decision(False, rules.INVALID_ACCOUNT)


@pytest.mark.parametrize("minor", [0, -1, -5_000])
def test_zero_or_negative_amount_is_declined(minor: int) -> None:
    d = decide(account(), PAN, "2031-12", yen(minor), 0, NOW)
    assert d == Decision(False, rules.INVALID_AMOUNT)


def test_card_the_issuer_does_not_hold_is_unknown_account() -> None:
    d = decide(None, "5555555555554444", "2030-06", yen(100), 0, NOW)
    assert d == Decision(False, rules.UNKNOWN_ACCOUNT)


def test_account_for_another_card_is_unknown_account() -> None:
    d = decide(account(pan="5555555555554444"), PAN, "2031-12", yen(100), 0, NOW)
    assert d == Decision(False, rules.UNKNOWN_ACCOUNT)


@pytest.mark.parametrize("expiry", ["2031-11", "2030-12", "12/31", "", None])
def test_expiry_other_than_the_cards_is_expiry_mismatch(expiry: str | None) -> None:
    d = decide(account(expiry="2031-12"), PAN, expiry, yen(100), 0, NOW)
    assert d == Decision(False, rules.EXPIRY_MISMATCH)


def test_card_past_its_expiry_month_is_expired() -> None:
    d = decide(account(expiry="2020-01"), PAN, "2020-01", yen(100), 0, NOW)
    assert d == Decision(False, rules.EXPIRED_CARD)


def test_card_is_good_through_the_last_ms_of_its_expiry_month_in_utc() -> None:
    last_ms = ms(2023, 11, 30, 23, 59, 59, 999)
    first_ms_after = ms(2023, 12, 1)
    # At last_ms it is already December in Tokyo: the rule must use UTC, not local time.
    assert is_expired("2023-11", last_ms) is False
    assert is_expired("2023-11", first_ms_after) is True
    assert decide(account(expiry="2023-11"), PAN, "2023-11", yen(1), 0, last_ms).approved
    assert decide(account(expiry="2023-11"), PAN, "2023-11", yen(1), 0,
                  first_ms_after) == Decision(False, rules.EXPIRED_CARD)


def test_amount_in_another_currency_is_currency_mismatch() -> None:
    d = decide(account(currency="JPY"), PAN, "2031-12", Money(100, "USD"), 0, NOW)
    assert d == Decision(False, rules.CURRENCY_MISMATCH)


def test_used_plus_amount_above_limit_is_over_limit() -> None:
    d = decide(account(limit=10_000), PAN, "2031-12", yen(2_001), used_minor=8_000, now_ms=NOW)
    assert d == Decision(False, rules.OVER_LIMIT)


def test_amount_exactly_filling_the_limit_is_approved() -> None:
    d = decide(account(limit=10_000), PAN, "2031-12", yen(2_000), used_minor=8_000, now_ms=NOW)
    assert d.approved is True


def test_every_decline_reason_is_listed() -> None:
    assert set(rules.DECLINE_REASONS) == {
        "unreadable_account", "invalid_account", "invalid_amount", "unknown_account",
        "expiry_mismatch", "expired_card", "currency_mismatch", "over_limit"}


def test_account_repr_never_shows_the_card_number() -> None:
    a = account()
    assert PAN not in repr(a)
    assert PAN not in str(a)


def test_account_from_key_set_record() -> None:
    a = Account.from_record(
        {"pan": "5555555555554444", "expiry": "2030-06", "limit": 2_000, "currency": "JPY"})
    assert a == Account("5555555555554444", "2030-06", 2_000, "JPY")


@pytest.mark.parametrize(("expiry", "limit", "currency"), [
    ("2031-13", 1_000, "JPY"), ("31-12", 1_000, "JPY"), ("2031-12", 10.5, "JPY"),
    ("2031-12", True, "JPY"), ("2031-12", 1_000, "yen"),
])
def test_account_rejects_bad_fields_without_echoing_the_card_number(
        expiry: str, limit: object, currency: str) -> None:
    with pytest.raises(Exception) as err:
        Account(PAN, expiry, limit, currency)  # type: ignore[arg-type]
    assert PAN not in str(err.value)
