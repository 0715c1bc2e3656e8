"""The shop prices orders as in Fig. 5 of seed 003 and names them deterministically (A2); it
states what it priced, and only the simulator's shop overcharges (R33)."""

from __future__ import annotations

from typing import Any

import pytest

from agents.shop.pricing import OrderRejected, order_id_for, price
from agents.shop.scenario import Scenario
from agents.shop.statement import HONEST
from kessai.money import Money
from schemas.v1 import Delivery, OrderRequest
from sim.devdata import Catalogue
from sim.shop import OVERSTATEMENT, Overcharging, overstated

CATALOGUE = Catalogue().items


def test_fig5_order_has_tax_55_and_total_1155() -> None:
    content = price([["XXXX", 1], ["YYYY", 1]], CATALOGUE)
    assert [(i.code, i.unit_price, i.quantity) for i in content.items] == [
        ("XXXX", 500, 1), ("YYYY", 600, 1)]
    assert content.currency == "JPY"
    assert content.tax == 55
    assert content.total == 1155
    assert content.amount == Money(1155, "JPY")


def test_tax_is_rounded_down() -> None:
    content = price([["TEA1", 1], ["XXXX", 3]], CATALOGUE)  # 2700 → 135; 1200+1500
    assert (content.tax, content.total) == (135, 2835)
    assert price([["XXXX", 1]], {"XXXX": ("x", 999)}).tax == 49  # 49.95 rounds down


@pytest.mark.parametrize("items", [
    [["NOPE", 1]],
    [["XXXX", 0]],
    [["XXXX", -1]],
    [["XXXX", True]],
    [["XXXX", 1.0]],
    [["XXXX"]],
    ["XXXX"],
    [],
])
def test_unpriceable_orders_are_rejected(items: list[Any]) -> None:
    with pytest.raises(OrderRejected):
        price(items, CATALOGUE)


def test_rejection_names_the_unknown_code() -> None:
    with pytest.raises(OrderRejected, match="NOPE"):
        price([["XXXX", 1], ["NOPE", 2]], CATALOGUE)


def test_order_id_is_deterministic_ten_digits() -> None:
    a = order_id_for("5f1c0d3a9b7e4f2a8c6d1e0b3a5c7d9e")
    assert a == order_id_for("5f1c0d3a9b7e4f2a8c6d1e0b3a5c7d9e")
    assert len(a) == 10 and a.isdigit()
    ids = {order_id_for(f"message-{n}") for n in range(2000)}
    assert len(ids) == 2000


def test_order_id_attempts_give_other_ids() -> None:
    ids = [order_id_for("message-1", attempt) for attempt in range(5)]
    assert ids[0] == order_id_for("message-1")
    assert len(set(ids)) == 5 and all(len(i) == 10 and i.isdigit() for i in ids)
    assert ids == [order_id_for("message-1", attempt) for attempt in range(5)]


def test_dishonest_shop_overstates_only_the_total() -> None:
    content = price([["XXXX", 1], ["YYYY", 1]], CATALOGUE)
    stated = overstated(content, OVERSTATEMENT)
    assert stated.items == content.items and stated.tax == content.tax
    assert stated.amount == Money(1255, "JPY")
    assert overstated(content, 0) == content


def test_scenario_defaults_and_knobs() -> None:
    assert Scenario.parse({}, "DIRECT_BOTH") == Scenario("DIRECT_BOTH")
    s = Scenario.parse({"result_mode": "SHOP_POLLS", "id_mode": "settlement", "hash": True,
                        "shop_tamper": "amount"}, "VIA_TERMINAL")
    assert s == Scenario("SHOP_POLLS", shop_assigns_id=False, send_hash=True)


@pytest.mark.parametrize("raw", [{"result_mode": "EMAIL"}, {"id_mode": "user"},
                                 {"hash": "yes"}])
def test_unknown_scenario_values_reject_the_order(raw: dict[str, Any]) -> None:
    with pytest.raises(OrderRejected):
        Scenario.parse(raw, "VIA_TERMINAL")


def _request(scenario: dict[str, Any]) -> OrderRequest:
    return OrderRequest("s", "carol", "shop-1", [["XXXX", 1], ["YYYY", 1]],
                        Delivery("a", "b", "c"), scenario)


def test_the_production_shop_states_what_it_priced_whatever_the_request_asks() -> None:
    content = price([["XXXX", 1], ["YYYY", 1]], CATALOGUE)
    for knob in ({}, {"shop_tamper": "amount"}, {"shop_tamper": "items"}):
        assert HONEST.first_request(content, _request(knob)) == content


def test_the_simulated_shop_overcharges_on_demand_and_refuses_unknown_tampers() -> None:
    content = price([["XXXX", 1], ["YYYY", 1]], CATALOGUE)
    shop = Overcharging()
    assert shop.first_request(content, _request({})) == content
    assert shop.first_request(content, _request({"shop_tamper": "none"})) == content
    assert shop.first_request(content, _request({"shop_tamper": "amount"})).amount == \
        Money(1155 + OVERSTATEMENT, "JPY")
    with pytest.raises(OrderRejected):
        shop.first_request(content, _request({"shop_tamper": "items"}))
