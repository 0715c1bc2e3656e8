"""The seed-004 decisions stated exactly: each configuration option and its default, every
decision with its candidates and reason (the routing events carry them), and the order of the
master's sources. Written against the mutants `make mutate` found in agents/selector/routing.py
and agents/serverwallet/master.py (the broader tests are in test_selector_routing.py)."""

from __future__ import annotations

import pytest

from agents.selector.routing import (
    Ask,
    ClientConfig,
    Deliver,
    Query,
    Unroutable,
    by_brand,
    decide,
    on_reply,
)
from agents.serverwallet import master
from agents.serverwallet.master import AskUser, MasterConfig, NoServer, ViaSlave
from kessai.errors import ConfigError

MODULES = {"m1": "sw1", "m2": "sw2"}


def test_a_client_configuration_has_its_defaults() -> None:
    c = ClientConfig.parse("c", {"modules": {"m1": ["sw1"]}})
    assert c == ClientConfig("c", "preselect", {"m1": "sw1"}, {}, "unroutable", "ask",
                             120_000, 5_000)


def test_a_client_configuration_takes_every_option() -> None:
    c = ClientConfig.parse("c", {"mode": "brand-live", "modules": MODULES,
                                 "brands": {"sw1": ("A",)}, "no_preselection": "ask",
                                 "several": "first", "prompt_timeout_ms": "7",
                                 "query_timeout_ms": 8})
    assert c == ClientConfig("c", "brand-live", MODULES, {"sw1": ["A"]}, "ask", "first", 7, 8)


@pytest.mark.parametrize(("raw", "match"), [
    ({"modules": {}}, "no wallet connection modules"),
    ({"modules": None}, "no wallet connection modules"),
    ({"modules": MODULES, "no_preselection": "guess"}, "no_preselection must be"),
    ({"modules": MODULES, "several": "all"}, "several first or ask"),
    ({"mode": "Ask", "modules": MODULES}, "unknown mode 'Ask'"),
])
def test_a_bad_client_configuration_is_refused_at_start(raw: dict[str, object],
                                                        match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ClientConfig.parse("c", raw)


def test_ex1_only_the_stored_module_itself_is_delivered_to() -> None:
    one = ClientConfig.parse("c", {"modules": {"m1": "sw1"}})
    # The only module is not the preselected one: the stored choice is stale, not a choice.
    assert decide(one, ["A"], "m9", {}, None) == Unroutable(["m1"], "NO_PRESELECTION")
    assert decide(one, ["A"], "", {}, None) == Unroutable(["m1"], "NO_PRESELECTION")
    assert decide(one, ["A"], "m1", {}, None) == Deliver("m1", ["m1"], "preselected")
    ask = ClientConfig.parse("c", {"modules": MODULES, "no_preselection": "ask"})
    assert decide(ask, ["A"], None, {}, None) == Ask(["m1", "m2"], "NO_PRESELECTION")


def test_ex3_to_ex5_decisions_carry_candidates_and_the_source_of_the_brand_info() -> None:
    held = ClientConfig.parse("c", {"mode": "brand-selector", "modules": MODULES,
                                    "brands": {"sw2": ["B"]}})
    assert decide(held, ["B"], None, {}, None) == Deliver(
        "m2", ["m2"], "brand B (brand info held by the selector)")
    published = ClientConfig.parse("c", {"mode": "brand-module", "modules": MODULES})
    assert decide(published, ["A"], None, {"m1": ["A"]}, None) == Deliver(
        "m1", ["m1"], "brand A (brand info published by the modules)")
    assert decide(published, ["A"], None, {"m9": ["A"]}, None) == Unroutable(
        ["m1", "m2"], "NO_MODULE_FOR_BRAND")
    live = ClientConfig.parse("c", {"mode": "brand-live", "modules": MODULES})
    assert decide(live, ["B"], None, {}, {"sw2": ["B"]}) == Deliver(
        "m2", ["m2"], "brand B (brand info the server wallets answered (1 of 2))")
    assert decide(live, ["B"], None, {}, {}) == Unroutable(["m1", "m2"], "NO_MODULE_FOR_BRAND")


def test_by_brand_with_no_wanted_brand_names_every_candidate() -> None:
    c = ClientConfig.parse("c", {"modules": MODULES})
    assert by_brand(c, [], {"m1": ["A"], "m2": []}, "s") == Unroutable(["m1", "m2"], "NO_BRAND")
    assert by_brand(c, ["A"], {"m1": ["A"], "m2": ["A"]}, "s") == Ask(
        ["m1", "m2"], "several modules settle brand A")


def test_a_reply_delivers_to_the_chosen_module_with_every_candidate() -> None:
    assert on_reply(("m1", "m2"), "m1", False) == Deliver("m1", ["m1", "m2"], "user-choice")
    assert on_reply(("m1", "m2"), "m1", True) == Unroutable(["m1", "m2"], "USER_CANCEL")
    assert isinstance(decide(ClientConfig.parse("c", {"mode": "brand-live",
                                                      "modules": MODULES}),
                             ["A"], None, {}, None), Query)


# -- the master server wallet ------------------------------------------------------------------

def test_a_master_configuration_has_its_defaults_and_takes_every_option() -> None:
    assert MasterConfig.parse({}) == MasterConfig()
    assert MasterConfig() == MasterConfig({}, [], [], "proxy", False, 120_000)
    cfg = MasterConfig.parse({"slave_brands": {"s1": ("B",)}, "slave_info": ("s2",),
                              "allow": ("s1",), "strategy": "certificate",
                              "ask_address": 1, "prompt_timeout_ms": "9",
                              "certificate_timeout_ms": "7"})
    assert cfg == MasterConfig({"s1": ["B"]}, ["s2"], ["s1"], "certificate", True, 9, 7)
    assert MasterConfig().certificate_timeout_ms == 30_000  # Ex 8's deadline [I]
    assert MasterConfig.parse({"slave_brands": None}).slave_brands == {}
    with pytest.raises(ConfigError, match="not 'both'"):
        MasterConfig.parse({"strategy": "both"})


def test_the_masters_own_brand_info_comes_before_the_clients() -> None:
    cfg = MasterConfig(slave_brands={"s1": ["B"]}, allow=["s2"], strategy="certificate")
    assert master.decide(["B"], [], cfg, {"s2": ["B"]}, []) == ViaSlave(
        "s1", "B", "certificate", "master-held brand info: s1 settles B")
    assert master.decide(["C"], [], cfg, {"s2": ["C"]}, []) == ViaSlave(
        "s2", "C", "proxy", "client-supplied brand info: s2 settles C")


def test_client_supplied_slaves_off_the_allow_list_are_never_followed() -> None:
    cfg = MasterConfig(allow=["s1"])
    # Refused from both client sources, named in the order seen.
    assert master.decide(["C"], [], cfg, {"s8": ["C"]}, ["s9"]) == NoServer(
        "SLAVE_NOT_ALLOWED", "client-supplied slaves not on the allow-list: s8, s9")
    # An allowed slave's brand info is used even next to a refused one.
    assert master.decide(["C"], [], cfg, {"s8": ["C"], "s1": ["C"]}, []) == ViaSlave(
        "s1", "C", "proxy", "client-supplied brand info: s1 settles C")
    # Nothing refused and nothing known: no server for the brand.
    assert master.decide(["C"], [], cfg, {"s1": ["D"]}, []) == NoServer(
        "NO_SERVER_FOR_BRAND", "neither the master nor a known slave settles it")


def test_the_user_types_an_address_only_when_no_slave_info_applies() -> None:
    cfg = MasterConfig(allow=["s1"], ask_address=True)
    assert master.decide(["C"], [], cfg, {}, ["s1"]) == AskUser(
        "slave", ["s1"], "client-supplied slave info")
    assert master.decide(["C"], [], cfg, {"s8": ["C"]}, ["s9"]) == AskUser(
        "address", [], "no slave info: the user types the slave's address")
    held = MasterConfig(slave_info=["s3"], allow=["s1"])
    assert master.decide(["C"], [], held, {}, ["s1"]) == AskUser(
        "slave", ["s3"], "master-held slave info")
    assert master.decide(["C"], ["C"], None, {}, []) == master.SettleSelf(
        "C", "holds the C certificate")
    assert master.decide(["C"], [], None, {}, []) == NoServer(
        "NO_SERVER_FOR_BRAND", "no certificate for the brand and no slaves")


def test_a_typed_address_is_trimmed_and_must_be_allowed() -> None:
    assert master.on_answer("address", [], "  s3 \n", ["s3"]) == "s3"
    assert master.on_answer("address", ["s3"], "s3", []) is None
    assert master.on_answer("slave", ["s2"], "s2", []) == "s2"
    assert master.on_answer("slave", ["s2"], " s2", ["s2"]) is None


@pytest.mark.parametrize("several", ["first", "ask"])
def test_ex4_ex5_several_matching_modules_follow_the_several_option(several: str) -> None:
    both = {"m1": ["A"], "m2": ["A"]}
    published = ClientConfig.parse("c", {"mode": "brand-module", "modules": MODULES,
                                         "several": several})
    live = ClientConfig.parse("c", {"mode": "brand-live", "modules": MODULES,
                                    "several": several})
    first = several == "first"
    assert decide(published, ["A"], None, both, None) == (
        Deliver("m1", ["m1", "m2"], "brand A (brand info published by the modules)") if first
        else Ask(["m1", "m2"], "several modules settle brand A"))
    assert decide(live, ["A"], None, {}, {"sw1": ["A"], "sw2": ["A"]}) == (
        Deliver("m1", ["m1", "m2"], "brand A (brand info the server wallets answered (2 of 2))")
        if first else Ask(["m1", "m2"], "several modules settle brand A"))
