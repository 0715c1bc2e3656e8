"""Seed 002 G6 (Se14): the gateway's tables (Figs. 7–10, the dev data) decide the methods."""

from __future__ import annotations

from agents.paygate.tables import IssuerRange, Tables, allowed_methods, issuer_of, methods_for
from sim import devdata


def dev_tables() -> Tables:
    return Tables.from_config({
        "users": {u.user_id: {"device_id": u.device_id, "card_number": u.card_number,
                              "expiration": u.expiration} for u in devdata.WAKEUP_USERS},
        "issuers": [list(r) for r in devdata.WAKEUP_ISSUERS],
        "merchants": [[c, n, i, list(m)] for c, n, i, m in devdata.WAKEUP_MERCHANTS],
    })


def test_fig10_merchant_1111111111_with_issuer_2a11111_allows_lump_sum_installments_revolving():
    """The worked example of [0101]: lump sum, installments, revolving; no (partial) bonus."""
    assert allowed_methods(dev_tables(), "1111111111", "2a11111") == ("L", "I", "R")


def test_every_fig10_row():
    t = dev_tables()
    assert allowed_methods(t, "2222222222", "2a22222") == ("L", "I", "pB", "R")
    assert allowed_methods(t, "2222222222", "2s44444") == ("L", "B")
    assert allowed_methods(t, "3333333333", "2a22222") == ("L", "B", "pB")
    assert allowed_methods(t, "4444444444", "2s33333") == ("L", "R")
    assert allowed_methods(t, "1111111111", "2s33333") == ()


def test_fig9_ranges_compare_on_leading_digits():
    t = dev_tables()
    assert issuer_of(t, "1525000012345678").issuer_code == "2a11111"  # type: ignore[union-attr]
    assert issuer_of(t, "1525060000000001") is None  # past 1525059999
    assert issuer_of(t, "1350012345678907").issuer_code == "2a11111"  # type: ignore[union-attr]
    assert issuer_of(t, "1356112345678900") is None  # 13561 > 13560
    assert issuer_of(t, "1360012345678905").issuer_code == "2s44444"  # type: ignore[union-attr]
    assert issuer_of(t, "1452590000123456").issuer_code == "2a22222"  # type: ignore[union-attr]
    assert not IssuerRange("13500", "13560", "x", "X").contains("1350")  # too short


def test_methods_for_a_user_go_user_card_issuer_merchant():
    t = dev_tables()
    assert methods_for(t, "00001", "1111111111") == ("L", "I", "R")
    assert methods_for(t, "00002", "2222222222") == ("L", "I", "pB", "R")
    assert methods_for(t, "00003", "1111111111") == "no_payment_method"  # D × merchant A
    assert methods_for(t, "00005", "1111111111") == "unknown_card_range"
    assert methods_for(t, "99999", "1111111111") == "unknown_user"


def test_a_user_never_prints_its_card():
    assert "1525" not in repr(dev_tables().users["00001"])
