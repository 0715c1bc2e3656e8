"""The seed-004 decisions as pure functions: the selector's routing per mode, the master's
move, the one-to-one pairing of modules and server wallets."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.selector.routing import Ask, ClientConfig, Deliver, Query, Unroutable, decide, on_reply
from agents.serverwallet import master
from agents.serverwallet.master import AskUser, MasterConfig, NoServer, SettleSelf, ViaSlave
from agents.wum import agent as wum_agent
from agents.wum.agent import ModuleConfig, check_modules
from kessai.clock import FakeClock
from kessai.errors import ConfigError
from kessai.membus import MemoryBus
from kessai.settings import Settings
from protocols.multiwallet import check_pairing, designated_without_asking
from sim import devkeys

MODULES = {"m1": "sw1", "m2": "sw2"}
BRANDS = {"sw1": ["A"], "sw2": ["B"]}


def cfg(mode: str, **kw: object) -> ClientConfig:
    return ClientConfig.parse("c", {"mode": mode, "modules": MODULES, "brands": BRANDS, **kw})


def test_preselect_routes_to_the_stored_module_without_a_brand_check() -> None:
    assert decide(cfg("preselect"), ["A"], "m2", {}, None) == Deliver(
        "m2", ["m1", "m2"], "preselected")
    assert decide(cfg("preselect"), ["A"], None, {}, None) == Unroutable(
        ["m1", "m2"], "NO_PRESELECTION")
    assert decide(cfg("preselect"), ["A"], "m9", {}, None) == Unroutable(
        ["m1", "m2"], "NO_PRESELECTION")  # a module the client no longer has
    assert isinstance(decide(cfg("preselect", no_preselection="ask"), [], None, {}, None), Ask)


def test_ask_offers_every_module_and_takes_only_an_offered_one() -> None:
    assert decide(cfg("ask"), ["A"], "m1", {}, None) == Ask(["m1", "m2"], "user-choice")
    assert on_reply(["m1", "m2"], "m2", False) == Deliver("m2", ["m1", "m2"], "user-choice")
    assert on_reply(["m1"], "m2", False) is None
    assert on_reply(["m1"], "", True) == Unroutable(["m1"], "USER_CANCEL")


def test_brand_modes_pick_the_module_whose_server_settles_the_brand() -> None:
    assert decide(cfg("brand-selector"), ["B"], None, {}, None).module == "m2"  # type: ignore[union-attr]
    assert decide(cfg("brand-selector"), ["C", "A"], None, {}, None).module == "m1"  # type: ignore[union-attr]
    assert decide(cfg("brand-selector"), ["C"], None, {}, None).reason == "NO_MODULE_FOR_BRAND"  # type: ignore[union-attr]
    assert decide(cfg("brand-selector"), [], None, {}, None).reason == "NO_BRAND"  # type: ignore[union-attr]
    # Ex 4: only what the modules published counts, not the selector's own brand info.
    assert decide(cfg("brand-module"), ["A"], None, {"m2": ["A"]}, None).module == "m2"  # type: ignore[union-attr]
    # Ex 5: ask first, then decide on the answers (partial ones too).
    assert decide(cfg("brand-live"), ["A"], None, {}, None) == Query(["sw1", "sw2"])
    assert decide(cfg("brand-live"), ["B"], None, {}, {"sw2": ["B"]}).module == "m2"  # type: ignore[union-attr]
    assert isinstance(decide(cfg("brand-live"), ["B"], None, {}, {"sw1": ["A"]}), Unroutable)


def test_several_matches_ask_among_the_matching_only_or_take_the_first() -> None:
    both = {"sw1": ["A"], "sw2": ["A", "B"]}
    c = ClientConfig.parse("c", {"mode": "brand-selector", "modules": MODULES, "brands": both})
    assert decide(c, ["A"], None, {}, None) == Ask(["m1", "m2"],
                                                   "several modules settle brand A")
    assert decide(c, ["B"], None, {}, None).module == "m2"  # type: ignore[union-attr]
    first = ClientConfig.parse("c", {"mode": "brand-selector", "modules": MODULES,
                                     "brands": both, "several": "first"})
    assert decide(first, ["A"], None, {}, None).module == "m1"  # type: ignore[union-attr]


def test_pairing_is_one_to_one_or_refused() -> None:
    check_pairing({"m1": ["sw1"], "m2": ["sw2"]})
    with pytest.raises(ConfigError, match="both bound to server wallet sw1"):
        check_pairing({"m1": ["sw1"], "m2": ["sw1"]})
    with pytest.raises(ConfigError, match="bound to 2 server wallets"):
        check_pairing({"m1": ["sw1", "sw2"]})
    check_pairing({"m1": ["sw1", "sw2"]}, multi=["m1"])  # Ex 6's common module
    with pytest.raises(ConfigError):
        ClientConfig.parse("c", {"mode": "ask", "modules": {"m1": "sw1", "m2": "sw1"}})
    with pytest.raises(ConfigError, match="unknown mode"):
        ClientConfig.parse("c", {"mode": "random", "modules": MODULES})


def test_a_module_worker_refuses_to_start_on_a_bad_pairing(tmp_path: Path) -> None:
    keydir = tmp_path / "keys"
    devkeys.init(keydir)
    bus = MemoryBus(Settings(keys_dir=keydir, data_dir=tmp_path), FakeClock())
    bad = {"wum-carol-a": ModuleConfig("wum-carol-a", "carol", ["wallet-a"]),
           "wum-carol-b": ModuleConfig("wum-carol-b", "carol", ["wallet-a"])}
    with pytest.raises(ConfigError, match="both bound"):
        bus.add("wum", lambda ctx: wum_agent.register(ctx, bad), ["wum-carol-a", "wum-carol-b"])
    with pytest.raises(ConfigError, match="two direct modules"):
        check_modules({m: ModuleConfig(m, "carol", [s], direct=True)
                       for m, s in (("x", "wallet-a"), ("y", "wallet-b"))})
    # The development key set's modules are paired one to one.
    bus.add("wum", wum_agent.register, ["wum-carol-a", "wum-carol-b", "wum-carol-m"])


def test_the_relay_and_the_selector_share_the_designated_wallet_rule() -> None:
    from agents.relay import flow
    assert flow.route_wallet(["w1", "w2"], "u", {"u": "w2"}) == designated_without_asking(
        ["w1", "w2"], "w2") == "w2"
    from protocols import multiwallet
    assert flow.choice_ok is multiwallet.choice_ok


def test_master_settles_itself_first_then_each_slave_source_in_order() -> None:
    full = MasterConfig(slave_brands={"s1": ["B"]}, slave_info=["s2"], allow=["s1", "s3"],
                        ask_address=True)
    assert master.decide(["A"], ["A"], full, {}, []) == SettleSelf("A", "holds the A certificate")
    assert master.decide(["B"], ["A"], full, {}, []) == ViaSlave(
        "s1", "B", "proxy", "master-held brand info: s1 settles B")
    cert = MasterConfig(slave_brands={"s1": ["B"]}, strategy="certificate")
    assert master.decide(["B"], [], cert, {}, []).action == "certificate"  # type: ignore[union-attr]
    assert master.decide(["C"], ["A"], full, {}, []) == AskUser("slave", ["s2"],
                                                                "master-held slave info")
    client = MasterConfig(allow=["s3"])
    assert master.decide(["C"], [], client, {"s3": ["C"]}, []).slave == "s3"  # type: ignore[union-attr]
    assert master.decide(["C"], [], client, {"s9": ["C"]}, []) == NoServer(
        "SLAVE_NOT_ALLOWED", "client-supplied slaves not on the allow-list: s9")
    assert master.decide(["C"], [], client, {}, ["s9", "s3"]) == AskUser(
        "slave", ["s3"], "client-supplied slave info")
    assert master.decide(["C"], [], MasterConfig(ask_address=True), {}, []).kind == "address"  # type: ignore[union-attr]
    assert master.decide(["C"], [], None, {}, []).reason == "NO_SERVER_FOR_BRAND"  # type: ignore[union-attr]
    assert master.on_answer("address", [], "s3", ["s3"]) == "s3"
    assert master.on_answer("address", [], "evil", ["s3"]) is None
    assert master.on_answer("slave", ["s2"], "s3", ["s3"]) is None
