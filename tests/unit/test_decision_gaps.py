"""Gaps `make mutate` found in the settlement's collation, user authentication and result
building, the shop's verdicts and the FI host's rules (docs/testing.md): each test states a
behaviour a surviving mutant broke without any test noticing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agents.issuer import rules
from agents.settlement import join
from agents.settlement.collation import collate
from agents.settlement.results import build_result
from agents.settlement.userauth import SettlementSecrets, check_second
from agents.shop.results import RESULT_REJECTED, judge_result
from kessai import authenticators, crypto, keys
from kessai.money import Money
from tests.unit.test_settlement_join import T0, P, fig5, first, run_first, run_second, second
from tests.unit.test_settlement_userauth import (
    KEY,
    kd,  # noqa: F401  (module-scoped key set)
    password_second,
    secrets,  # noqa: F401
    signed_second,
)

# -- collation: the differences name the fields (they go to the audit topic) -----------------

@pytest.mark.parametrize(("change", "named"), [
    ({"order_id": "other"}, ["order_id"]),
    ({"currency": "USD"}, ["currency", "first.amount_vs_total"]),
    ({"items": "quantity"}, ["items"]),
    ({"tax": 56}, ["tax"]),
    ({"total": 1156}, ["total", "first.amount_vs_total"]),
])
def test_collation_names_each_field_that_differs(change: dict[str, object],
                                                 named: list[str]) -> None:
    f, s = first(), second()
    if "order_id" in change:
        s = dataclasses.replace(s, order_id="other")
    else:
        c = f.content
        assert c is not None
        c = fig5(quantity=2) if "items" in change else dataclasses.replace(
            c, **change)  # type: ignore[arg-type]
        f = dataclasses.replace(f, content=c)
    assert collate(f, s).differences == tuple(named)


def test_collation_names_amount_totals_hashes_and_missing_content() -> None:
    f, s = first(), second()
    assert collate(f, dataclasses.replace(s, amount=Money(1, "JPY"))).differences == (
        "amount", "second.amount_vs_total")
    assert collate(dataclasses.replace(f, amount=Money(1, "JPY")), s).differences == (
        "amount", "first.amount_vs_total")
    hashed = first(hashed=True)
    assert collate(hashed, second(content=fig5(quantity=2))).differences == ("content_hash",)
    assert collate(dataclasses.replace(f, content=None), s).differences == (
        "first.content_missing",)


# -- user authentication -----------------------------------------------------------------------

def test_a_password_user_without_a_stored_hash_or_sealed_password_fails(
        kd: Path, secrets: SettlementSecrets) -> None:  # noqa: F811
    reg = keys.load_registry(kd)
    ok = password_second(kd, "bob-dev-password")
    assert check_second(ok, "terminal", KEY, reg, secrets) is None
    no_hash = dataclasses.replace(secrets, users={**secrets.users, "bob": {"auth": "password"}})
    assert check_second(ok, "terminal", KEY, reg, no_hash) == "auth"
    assert check_second(dataclasses.replace(ok, password_sealed=None), "terminal", KEY, reg,
                        secrets) == "auth"


def test_a_password_or_signature_for_another_order_fails(
        kd: Path, secrets: SettlementSecrets) -> None:  # noqa: F811
    reg = keys.load_registry(kd)
    ok = password_second(kd, "bob-dev-password")
    assert check_second(ok, "terminal", "shop-1/another", reg, secrets) == "auth"
    pub = reg.sealing["settlement"][1]
    garbage = crypto.seal(pub, b"\xff\xfe not utf-8", authenticators.password_context(KEY))
    assert check_second(dataclasses.replace(ok, password_sealed=garbage), "terminal", KEY, reg,
                        secrets) == "auth"
    signed = signed_second(kd)
    assert check_second(signed, "terminal", KEY, reg, secrets) is None
    flipped = bytes([signed.user_authenticator[0] ^ 1]) + signed.user_authenticator[1:]  # type: ignore[index]
    assert check_second(dataclasses.replace(signed, user_authenticator=flipped), "terminal",
                        KEY, reg, secrets) == "auth"


def test_a_method_nobody_agreed_fails(kd: Path, secrets: SettlementSecrets) -> None:  # noqa: F811
    reg = keys.load_registry(kd)
    odd = dataclasses.replace(secrets, users={**secrets.users,
                                              "bob": {**secrets.users["bob"], "auth": "retina"}})
    second_ = dataclasses.replace(password_second(kd, "bob-dev-password"), auth_method="retina")
    assert check_second(second_, "terminal", KEY, reg, odd) == "auth"


# -- result building -------------------------------------------------------------------------

def test_results_without_a_user_key_or_session_carry_no_user_authenticator() -> None:
    lone_first = join.on_tick(run_first(None, first()).state, T0 + P.t_first_ms, P).state
    assert lone_first is not None
    shop_key, user_key = b"s" * 32, b"u" * 32
    result = build_result(lone_first, "shop", shop_key, user_key)
    assert (result.session, result.user_authenticator, result.attempt) == ("", b"", 1)
    done = run_second(run_first(None, first()).state, second(content=fig5(quantity=2))).state
    assert done is not None
    assert build_result(done, "user", shop_key, None).user_authenticator == b""
    tagged = build_result(done, "user", shop_key, user_key)
    assert authenticators.user_authenticator_ok(user_key, "shop-1", "1234567890", "MISMATCH",
                                                Money(1155, "JPY"), "sess-1",
                                                tagged.user_authenticator)
    lone_second = join.on_tick(run_second(None, second()).state, T0 + P.t_second_ms, P).state
    assert lone_second is not None
    alone = build_result(lone_second, "user", shop_key, user_key)
    assert (alone.shop_id, alone.order_id, alone.amount, alone.session) == (
        "shop-1", "1234567890", Money(1155, "JPY"), "sess-1")
    assert build_result(dataclasses.replace(done, deliveries=4), "shop", shop_key,
                        None).attempt == 4


# -- the shop's verdict and the FI host's rules -----------------------------------------------

def test_an_authentic_result_with_an_unknown_outcome_is_rejected() -> None:
    key = b"k" * 32
    tag = authenticators.shop_authenticator(key, "shop-1", "o1", "MAYBE", Money(5, "JPY"))
    verdict = judge_result(key, "shop-1", "o1", Money(5, "JPY"), "MAYBE", Money(5, "JPY"), tag)
    assert verdict.status == RESULT_REJECTED and not verdict.final


def test_the_auth_code_is_six_upper_case_hex_digits_bound_to_the_charge() -> None:
    code = rules.auth_code("shop-1/o1", Money(5, "JPY"), 0, T0)
    assert len(code) == 6 and code == code.upper() and any(c.isalpha() for c in code + "A")
    assert code != rules.auth_code("shop-1/o1", Money(5, "JPY"), 1, T0)
    assert code != rules.auth_code("shop-1/o1", Money(5, "JPY"), 0, T0 + 1)
    account = rules.Account("4111111111111111", "2031-12", 1000, "JPY")
    decision = rules.decide(account, "4111111111111111", "2031-12", Money(5, "JPY"), 7, T0,
                            join_key="shop-1/o1")
    assert decision.approved and decision.auth_code == rules.auth_code(
        "shop-1/o1", Money(5, "JPY"), 7, T0)
