"""Seed 004 Ex 1–6 as whole purchases on the in-memory bus: the real shop, settlement, issuer,
selector, modules and server wallets behind their doors (real signatures), an injected clock.
Each wake-up reaches exactly one module, unchanged, and settles with that module's server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.wum.agent import ModuleConfig
from kessai import envelope
from schemas.selector import (
    BrandInfo,
    BrandQuery,
    ModuleSettle,
    Preselection,
    Prompt,
    PromptReply,
    RoutingEvent,
    WalletSettled,
)
from schemas.v1 import PaymentRequest
from sim import devkeys
from sim.selector_world import (
    buy,
    client,
    close_worlds,
    deliveries,
    handed,
    modules,
    seconds_from,
    unroutable,
    user_results,
    world,
)


@pytest.fixture(autouse=True)
async def _close() -> AsyncIterator[None]:
    yield
    await close_worlds()


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


def settled(bus) -> list[WalletSettled]:  # type: ignore[no-untyped-def]
    return bus.messages("kessai.wallet.settled", WalletSettled)


async def test_ex1_preselected_module_gets_the_wakeup_unchanged_and_settles(
        keydir: Path, tmp_path: Path) -> None:
    bus = world(keydir, tmp_path, clients=client("preselect"))
    await bus.send("kessai.selector.preselections", Preselection("carol", "wum-carol-b"),
                   "carol", "operator")
    # The wake-up names visa first (brand routing would pick wum-carol-a): the choice wins.
    await buy(bus, "s-ex1")
    [h] = handed(bus)
    assert h.module_id == "wum-carol-b" and h.mode == "preselect"
    [wake] = bus.log["kessai.wakeups.selector"]
    assert h.original == wake.value  # byte for byte (R-C4)
    assert bus.messages("kessai.selector.prompts") == []  # no prompt in Ex 1
    [ms] = bus.messages("kessai.wallet.sessions", ModuleSettle)
    assert (ms.module_id, ms.server_id) == ("wum-carol-b", "wallet-b")  # its paired server
    assert seconds_from(bus) == ["wallet-b"]
    [result] = user_results(bus)
    assert result.outcome == "APPROVED"
    events = bus.messages("kessai.selector.routing-events", RoutingEvent)
    [event] = [e for e in events if e.decided_by == "selector"]
    assert (event.chosen, event.reason) == ("wum-carol-b", "preselected")
    assert [(e.decided_by, e.chosen) for e in events if e.decided_by != "selector"] == [
        ("wallet-b", "wallet-b")]  # the server wallet settles itself (R-M1)


async def test_ex1_a_changed_preselection_affects_only_later_wakeups(keydir: Path,
                                                                      tmp_path: Path) -> None:
    bus = world(keydir, tmp_path, clients=client("preselect"))
    await bus.send("kessai.selector.preselections", Preselection("carol", "wum-carol-a"),
                   "carol", "operator")
    await buy(bus, "s-1")
    await bus.send("kessai.selector.preselections", Preselection("carol", "wum-carol-b"),
                   "carol", "operator")
    await buy(bus, "s-2")
    assert [h.module_id for h in handed(bus)] == ["wum-carol-a", "wum-carol-b"]


async def test_ex1_no_preselection_is_unroutable_or_asks_as_configured(
        keydir: Path, tmp_path: Path) -> None:
    bus = world(keydir, tmp_path / "u", clients=client("preselect"))
    await buy(bus, "s-1")
    [u] = unroutable(bus)
    assert u.reason == "NO_PRESELECTION" and handed(bus) == []
    bus = world(keydir, tmp_path / "a", clients=client("preselect", no_preselection="ask"))
    await buy(bus, "s-1")
    [p] = bus.messages("kessai.selector.prompts", Prompt)
    assert p.candidates == ["wum-carol-a", "wum-carol-b"] and unroutable(bus) == []


async def test_ex2_the_user_chooses_on_arrival(keydir: Path, tmp_path: Path) -> None:
    bus = world(keydir, tmp_path, clients=client("ask"))
    await buy(bus, "s-ex2")
    [p] = bus.messages("kessai.selector.prompts", Prompt)
    assert p.kind == "module" and p.candidates == ["wum-carol-a", "wum-carol-b"]
    assert handed(bus) == [] and seconds_from(bus) == []  # held until the reply
    await bus.send("kessai.selector.replies", PromptReply(p.wakeup_id, "carol", "wum-carol-b"),
                   "carol", "operator")
    await bus.drain()
    [h] = handed(bus)
    assert h.module_id == "wum-carol-b"
    assert h.original == bus.log["kessai.wakeups.selector"][0].value
    assert seconds_from(bus) == ["wallet-b"]
    assert [r.outcome for r in user_results(bus)] == ["APPROVED"]


async def test_ex2_timeout_cancel_and_bad_replies(keydir: Path, tmp_path: Path) -> None:
    bus = world(keydir, tmp_path, clients=client("ask", prompt_timeout_ms=10_000))
    await buy(bus, "s-1")
    await buy(bus, "s-2")
    p1, p2 = bus.messages("kessai.selector.prompts", Prompt)
    # A module that was not offered, a reply for an unknown wake-up: ignored, prompt open.
    await bus.send("kessai.selector.replies", PromptReply(p1.wakeup_id, "carol", "wum-evil"),
                   "carol", "operator")
    await bus.send("kessai.selector.replies", PromptReply("shop-1/nope", "carol", "wum-carol-a"),
                   "carol", "operator")
    await bus.drain()
    assert handed(bus) == [] and unroutable(bus) == []
    await bus.send("kessai.selector.replies", PromptReply(p2.wakeup_id, "carol", cancel=True),
                   "carol", "operator")
    await bus.drain()
    bus.clock.advance(10_001)  # type: ignore[attr-defined]
    await bus.tick()
    reasons = {u.wakeup_id: u.reason for u in unroutable(bus)}
    assert reasons == {p1.wakeup_id: "USER_TIMEOUT", p2.wakeup_id: "USER_CANCEL"}
    # A reply after the deadline is ignored: still no delivery, still one outcome each.
    await bus.send("kessai.selector.replies", PromptReply(p1.wakeup_id, "carol", "wum-carol-a"),
                   "carol", "operator")
    await bus.drain()
    assert handed(bus) == [] and set(deliveries(bus).values()) == {1}


@pytest.mark.parametrize("brand,module,server", [("visa", "wum-carol-a", "wallet-a"),
                                                 ("mastercard", "wum-carol-b", "wallet-b")])
async def test_ex3_brand_info_held_by_the_selector(keydir: Path, tmp_path: Path, brand: str,
                                                   module: str, server: str) -> None:
    bus = world(keydir, tmp_path, clients=client("brand-selector"))
    await buy(bus, "s-ex3", brands=[brand])
    [h] = handed(bus)
    assert h.module_id == module
    assert seconds_from(bus) == [server]
    assert [r.outcome for r in user_results(bus)] == ["APPROVED"]


async def test_ex3_no_module_for_the_brand_is_unroutable(keydir: Path, tmp_path: Path) -> None:
    bus = world(keydir, tmp_path, clients=client("brand-selector"))
    await buy(bus, "s-1", brands=["jcb"])
    [u] = unroutable(bus)
    assert u.reason == "NO_MODULE_FOR_BRAND" and handed(bus) == []
    assert u.original == bus.log["kessai.wakeups.selector"][0].value


async def test_ex4_brand_info_published_by_the_modules_and_refreshed(keydir: Path,
                                                                      tmp_path: Path) -> None:
    bus = world(keydir, tmp_path, clients=client("brand-module"))
    await bus.start()  # the modules publish their brand info at start
    await bus.drain()
    assert {i.module_id for i in bus.messages("kessai.wallet.brand-info", BrandInfo)} == {
        "wum-carol-a", "wum-carol-b"}
    await buy(bus, "s-1", brands=["mastercard"])
    await buy(bus, "s-2", brands=["diners"])
    assert [h.module_id for h in handed(bus)] == ["wum-carol-b"]
    assert [u.reason for u in unroutable(bus)] == ["NO_MODULE_FOR_BRAND"]
    # wum-carol-b is redeployed with {mastercard, diners}; the selector's config is unchanged.
    await bus.send("kessai.wallet.brand-info",
                   BrandInfo("carol", "wum-carol-b", "wallet-b", ["mastercard", "diners"], 2),
                   "carol", "wum-carol-b")
    await buy(bus, "s-3", brands=["diners"])
    assert [h.module_id for h in handed(bus)] == ["wum-carol-b", "wum-carol-b"]


async def test_ex4_a_forged_brand_info_record_is_ignored(keydir: Path, tmp_path: Path) -> None:
    bus = world(keydir, tmp_path, clients=client("brand-module"))
    await bus.start()
    # wum-carol-a claims to be wallet-b's module (no such pairing): audited, ignored.
    await bus.send("kessai.wallet.brand-info",
                   BrandInfo("carol", "wum-carol-a", "wallet-b", ["diners"], 9),
                   "carol", "wum-carol-a")
    # wum-carol-a speaks for wum-carol-b: the door refuses it (sender_is).
    await bus.send("kessai.wallet.brand-info",
                   BrandInfo("carol", "wum-carol-b", "wallet-b", ["diners"], 9),
                   "carol", "wum-carol-a")
    await buy(bus, "s-1", brands=["diners"])
    assert handed(bus) == [] and [u.reason for u in unroutable(bus)] == ["NO_MODULE_FOR_BRAND"]
    kinds = [m.kind for m in bus.messages("kessai.audit")]
    assert "forged-brand-info" in kinds
    assert [d.reason for d in bus.messages("kessai.dead-letters")] == ["sender_mismatch"]


async def test_ex5_brand_info_asked_live_follows_a_change_at_the_server(
        keydir: Path, tmp_path: Path) -> None:
    holdings = {"wallet-a": {"carol": ["visa"]}, "wallet-b": {"carol": ["mastercard"]}}
    bus = world(keydir, tmp_path, clients=client("brand-live"), holdings=holdings)
    await buy(bus, "s-1", brands=["visa"])
    assert len(bus.messages("kessai.wallet.brand-queries", BrandQuery)) == 2
    assert [h.module_id for h in handed(bus)] == ["wum-carol-a"]
    holdings["wallet-a"]["carol"] = []  # visa moves to wallet-b, at the servers only
    holdings["wallet-b"]["carol"] = ["mastercard", "visa"]
    await buy(bus, "s-2", brands=["visa"])
    assert [h.module_id for h in handed(bus)] == ["wum-carol-a", "wum-carol-b"]


async def test_ex5_partial_answers_decide_at_the_deadline(keydir: Path, tmp_path: Path) -> None:
    # Only wallet-a's worker answers (wallet-b is down): the question times out, the answer
    # that came decides.
    bus = world(keydir, tmp_path, clients=client("brand-live", query_timeout_ms=3_000),
                holdings={"wallet-a": {"carol": ["visa"]}})
    bus.contexts[-1].routes._by_topic.pop("kessai.wallet.brand-queries")
    await buy(bus, "s-1", brands=["visa"])
    assert handed(bus) == []
    wid = bus.messages("kessai.wallet.brand-queries", BrandQuery)[0].wakeup_id
    from schemas.selector import BrandAnswer
    await bus.send("kessai.wallet.brand-answers", BrandAnswer(wid, "carol", "wallet-a", ["visa"]),
                   "carol", "wallet-a")
    await bus.drain()
    assert handed(bus) == []  # one of two answers: still waiting
    bus.clock.advance(3_001)  # type: ignore[attr-defined]
    await bus.tick()
    assert [h.module_id for h in handed(bus)] == ["wum-carol-a"]


async def test_ex6_one_common_module_and_no_selector(keydir: Path, tmp_path: Path) -> None:
    common = ModuleConfig("wum-carol-m", "carol", ["wallet-a", "wallet-b"], multi=True,
                          direct=True)
    bus = world(keydir, tmp_path, with_selector=False, mods=modules(**{"wum-carol-m": common}))
    for n, brand in enumerate(["mastercard", "visa"]):
        request = PaymentRequest("shop-1", f"ORD{n}", f"s-{n}", "carol",
                                 _content(), _content().amount, brands=[brand])
        await bus.send("kessai.wakeups.wum", request, "carol", "shop-1")
        await bus.drain()
    sessions = bus.messages("kessai.wallet.sessions", ModuleSettle)
    assert [(s.module_id, s.server_id) for s in sessions] == [("wum-carol-m", "wallet-b"),
                                                               ("wum-carol-m", "wallet-a")]
    assert seconds_from(bus) == ["wallet-b", "wallet-a"]
    events = bus.messages("kessai.selector.routing-events", RoutingEvent)
    assert [e.chosen for e in events if e.decided_by == "wum-carol-m"] == ["wallet-b",
                                                                           "wallet-a"]
    assert not [e for e in events if e.decided_by == "selector"]  # no selector at all


def _content():  # type: ignore[no-untyped-def]
    from schemas.v1 import LineItem, OrderContent
    return OrderContent([LineItem("XXXX", "peanut butter", 500, 1)], "JPY", 25, 525)


async def test_exactly_once_per_wakeup_id_with_redelivery_and_restart(keydir: Path,
                                                                      tmp_path: Path) -> None:
    """R-C2/R-X1: every wake-up id is delivered to one module input or the unroutable topic
    exactly once — redelivered records and a selector restart (its table kept, as the
    changelog keeps it) included."""
    bus = world(keydir, tmp_path, clients=client("brand-selector"))
    for n, brand in enumerate(["visa", "mastercard", "jcb", "visa", "mastercard"]):
        await buy(bus, f"s-{n}", brands=[brand])
    before = deliveries(bus)
    assert len(before) == 5 and set(before.values()) == {1}
    selector = next(c for c in bus.contexts if c.name == "selector")
    table = dict(selector.host.tables["selector-state"])
    # A restart: a fresh selector on the same changelog state; every wake-up comes again.
    from agents.selector import agent as selector_agent
    bus.contexts.remove(selector)
    restarted = bus.add("selector", lambda ctx: selector_agent.register(
        ctx, client("brand-selector")), ["selector"])
    restarted.host.tables["selector-state"].update(table)
    for rec in bus.log["kessai.wakeups.selector"]:
        await restarted.door.receive(rec.topic, rec.partition, rec.offset, rec.key, rec.value)
    await bus.drain()
    assert deliveries(bus) == before
    # A shop that sends M4 again for the same order (a new message): still one delivery.
    first = envelope.body_of(envelope.decode(bus.log["kessai.wakeups.selector"][0].value))
    await bus.send("kessai.wakeups.selector", first, "carol", "shop-1")
    await bus.drain()
    assert deliveries(bus) == before


async def test_unknown_client_is_unroutable_and_the_selector_keeps_going(
        keydir: Path, tmp_path: Path) -> None:
    bus = world(keydir, tmp_path, clients=client("brand-selector"))
    request = PaymentRequest("shop-1", "ORDX", "s-x", "mallory", _content(), _content().amount)
    await bus.send("kessai.wakeups.selector", request, "mallory", "shop-1")
    await bus.send("kessai.selector.preselections", Preselection("carol", "wum-nobody"),
                   "carol", "operator")
    await bus.drain()
    assert [u.reason for u in unroutable(bus)] == ["UNKNOWN_CLIENT"]
    await buy(bus, "s-1", brands=["visa"])
    assert [h.module_id for h in handed(bus)] == ["wum-carol-a"]
    assert "unknown-module" in [m.kind for m in bus.messages("kessai.audit")]



def test_a_server_wallet_speaks_only_for_its_own_users(keydir: Path) -> None:
    """The settlement server takes a server wallet as the user's channel (cl. 12) only for a
    user it holds a wallet of (the key set names carol's: wallet-a and wallet-b)."""
    from agents.settlement.userauth import SettlementSecrets, check_second
    from kessai import authenticators, crypto, keys
    from schemas.v1 import SecondRequest

    k = keys.load_actor(keydir, "settlement")
    assert k.seal_private
    secrets = SettlementSecrets(k.seal_private, k.secrets["users"], k.secrets["held_accounts"],
                                k.secrets["shop_mac"], k.secrets["user_mac"])
    key = "shop-1/o1"
    sealed = crypto.seal(keys.load_registry(keydir).sealing["settlement"][1],
                         authenticators.pack_account("4012888888881881", "2029-03"),
                         authenticators.account_context(key))
    second = SecondRequest("shop-1", "o1", "s", "carol", _content(), _content().amount,
                           "channel", account_sealed=sealed)
    reg = keys.load_registry(keydir)
    assert check_second(second, "wallet-b", key, reg, secrets) is None
    users = {**secrets.users, "carol": {**secrets.users["carol"], "wallets": ["wallet-a"]}}
    other = SettlementSecrets(secrets.seal_private, users, secrets.held_accounts,
                              secrets.shop_mac, secrets.user_mac)
    assert check_second(second, "wallet-b", key, reg, other) == "auth"


async def test_a_direct_wakeup_for_an_unknown_client_is_unroutable_once_and_audited(
        keydir: Path, tmp_path: Path) -> None:
    """R-X1/R-X3 without a selector: a wake-up on the modules' topic for a client no module
    takes is unroutable with its reason, has its routing event, and stays one outcome when
    the record is delivered again (a crash before the offset commit)."""
    bus = world(keydir, tmp_path, with_selector=False)
    request = PaymentRequest("shop-1", "ORDZ", "s-z", "mallory", _content(), _content().amount)
    await bus.send("kessai.wakeups.wum", request, "mallory", "shop-1")
    await bus.drain()
    wum = next(c for c in bus.contexts if c.name == "wum")
    [rec] = bus.log["kessai.wakeups.wum"]
    await wum.door.receive(rec.topic, rec.partition, rec.offset, rec.key, rec.value)
    await bus.drain()
    assert [(u.wakeup_id, u.reason) for u in unroutable(bus)] == [("shop-1/ORDZ",
                                                                   "UNKNOWN_CLIENT")]
    events = bus.messages("kessai.selector.routing-events", RoutingEvent)
    assert [(e.wakeup_id, e.mode, e.chosen, e.reason) for e in events] == [
        ("shop-1/ORDZ", "direct", "", "UNKNOWN_CLIENT")]
    assert deliveries(bus) == {"shop-1/ORDZ": 1}
