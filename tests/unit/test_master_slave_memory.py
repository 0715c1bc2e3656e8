"""Seed 004 Ex 7–12 as whole purchases on the in-memory bus: carol's one conventional module
(no selector) sends the wake-up to her master server wallet, wallet-a, which holds only a visa
certificate; the shop's wake-up asks for mastercard, which the slave wallet-b holds. The shop,
settlement and issuer are the real ones: each purchase ends in a settlement outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.serverwallet.master import MasterConfig
from agents.wum.agent import ModuleConfig
from kessai import envelope
from kessai.membus import MemoryBus
from protocols.user import delivery_for
from schemas.selector import (
    ModuleSettle,
    Prompt,
    PromptReply,
    SlaveAnswer,
    SlaveRequest,
    UnroutableWakeup,
    WalletSettled,
)
from schemas.v1 import OrderRequest
from sim import devkeys
from sim.selector_world import close_worlds, seconds_from, user_results, world

SLAVES = "kessai.wallet.slaves"


@pytest.fixture(autouse=True)
async def _close() -> AsyncIterator[None]:
    yield
    await close_worlds()


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


def conventional(**kw: object) -> dict[str, ModuleConfig]:
    """The client side of Ex 7–12: one module, bound to the master, taking the wake-ups."""
    return {"wum-carol-a": ModuleConfig("wum-carol-a", "carol", ["wallet-a"], direct=True,
                                        **kw)}  # type: ignore[arg-type]


def ms_world(keydir: Path, tmp: Path, cfg: MasterConfig, **module_kw: object) -> MemoryBus:
    return world(keydir, tmp, with_selector=False, mods=conventional(**module_kw),
                 masters={"wallet-a": {"carol": cfg}})


async def order(bus: MemoryBus, session: str, brands: list[str]) -> None:
    """carol's module places the order (no selector), so the wake-up comes back to it."""
    req = OrderRequest(session, "carol", "shop-1", [["XXXX", 1]], delivery_for("carol"),
                       scenario={"result_mode": "DIRECT_BOTH", "brands": brands})
    await bus.send("kessai.order-requests", req, session, "wum-carol-a")
    await bus.drain()


def settled(bus: MemoryBus) -> list[WalletSettled]:
    return bus.messages("kessai.wallet.settled", WalletSettled)


def senders(bus: MemoryBus, topic: str) -> list[str]:
    return [envelope.decode(r.value).sender for r in bus.log.get(topic, [])]


def assert_only_via_master(bus: MemoryBus) -> None:
    """The module talks to the master only, and only the master answers it (R-M2)."""
    assert {s.server_id for s in bus.messages("kessai.wallet.sessions", ModuleSettle)} == {
        "wallet-a"}
    assert set(senders(bus, "kessai.wallet.settled")) == {"wallet-a"}


async def test_r_m1_the_master_settles_itself_when_it_holds_the_brand(keydir: Path,
                                                                       tmp_path: Path) -> None:
    bus = ms_world(keydir, tmp_path, MasterConfig(slave_brands={"wallet-b": ["mastercard"]}))
    await order(bus, "s-1", ["visa"])
    assert bus.log.get(SLAVES, []) == []
    assert seconds_from(bus) == ["wallet-a"]
    assert [(s.via, s.ok) for s in settled(bus)] == [("self", True)]
    assert [r.outcome for r in user_results(bus)] == ["APPROVED"]


async def test_ex7_master_proxies_to_the_slave_through_the_virtual_module(
        keydir: Path, tmp_path: Path) -> None:
    bus = ms_world(keydir, tmp_path, MasterConfig(slave_brands={"wallet-b": ["mastercard"]}))
    await order(bus, "s-ex7", ["mastercard"])
    [req] = bus.messages(SLAVES, SlaveRequest)
    assert (req.action, req.slave_id) == ("proxy", "wallet-b")
    [wake] = bus.log["kessai.wakeups.wum"]
    assert req.original == wake.value  # the slave follows the wake-up received via the master
    assert seconds_from(bus) == ["wallet-b"]  # the slave runs the settlement
    [done] = settled(bus)
    assert (done.settled_by, done.via, done.ok) == ("wallet-b", "proxy:wallet-b", True)
    assert_only_via_master(bus)
    assert [r.outcome for r in user_results(bus)] == ["APPROVED"]


async def test_ex8_master_fetches_the_certificate_and_settles_itself(keydir: Path,
                                                                     tmp_path: Path) -> None:
    bus = ms_world(keydir, tmp_path, MasterConfig(slave_brands={"wallet-b": ["mastercard"]},
                                                  strategy="certificate"))
    await order(bus, "s-ex8", ["mastercard"])
    [req] = bus.messages(SLAVES, SlaveRequest)
    [ans] = bus.messages(SLAVES, SlaveAnswer)
    assert req.action == "certificate" and ans.certificate is not None
    assert ans.certificate.brand == "mastercard" and ans.certificate.wallet_id == "wallet-b"
    assert seconds_from(bus) == ["wallet-a"]  # the master settles; the slave does not
    [done] = settled(bus)
    assert (done.settled_by, done.via) == ("wallet-a", "certificate:wallet-b")
    assert [r.outcome for r in user_results(bus)] == ["APPROVED"]
    # The card never travels readable: not in the slave's answer, not anywhere on the bus.
    assert all(b"5105105105105100" not in r.value for recs in bus.log.values() for r in recs)


async def test_ex8_a_slave_without_the_brand_settles_nothing(keydir: Path,
                                                             tmp_path: Path) -> None:
    # The master's info is wrong: wallet-b holds no jcb certificate for carol.
    bus = ms_world(keydir, tmp_path, MasterConfig(slave_brands={"wallet-b": ["jcb"]},
                                                  strategy="certificate"))
    await order(bus, "s-1", ["jcb"])
    assert seconds_from(bus) == []
    [u] = bus.messages("kessai.wakeups.unroutable", UnroutableWakeup)
    assert u.reason == "NO_SERVER_FOR_BRAND"


async def test_ex9_master_slave_info_and_the_user_designates_the_slave(
        keydir: Path, tmp_path: Path) -> None:
    bus = ms_world(keydir, tmp_path, MasterConfig(slave_info=["wallet-b"]))
    await order(bus, "s-ex9", ["mastercard"])
    [p] = bus.messages("kessai.selector.prompts", Prompt)
    assert (p.kind, p.candidates, p.asked_by) == ("slave", ["wallet-b"], "wallet-a")
    assert bus.log.get(SLAVES, []) == []  # held until the user designates
    await bus.send("kessai.wallet.replies", PromptReply(p.wakeup_id, "carol", "wallet-b"),
                   "carol", "operator")
    await bus.drain()
    assert seconds_from(bus) == ["wallet-b"]
    assert [s.via for s in settled(bus)] == ["proxy:wallet-b"]
    assert_only_via_master(bus)
    assert [r.outcome for r in user_results(bus)] == ["APPROVED"]


async def test_ex10_the_user_types_the_slave_address_checked_against_the_allow_list(
        keydir: Path, tmp_path: Path) -> None:
    bus = ms_world(keydir, tmp_path, MasterConfig(ask_address=True, allow=["wallet-b"]))
    await order(bus, "s-ex10", ["mastercard"])
    [p] = bus.messages("kessai.selector.prompts", Prompt)
    assert (p.kind, p.candidates) == ("address", [])
    await bus.send("kessai.wallet.replies", PromptReply(p.wakeup_id, "carol", "evil.example"),
                   "carol", "operator")
    await bus.drain()
    assert bus.log.get(SLAVES, []) == []  # not on the allow-list: ignored, prompt still open
    assert "SLAVE_NOT_ALLOWED" in [m.kind for m in bus.messages("kessai.audit")]
    await bus.send("kessai.wallet.replies", PromptReply(p.wakeup_id, "carol", " wallet-b "),
                   "carol", "operator")
    await bus.drain()
    assert seconds_from(bus) == ["wallet-b"]
    assert [r.outcome for r in user_results(bus)] == ["APPROVED"]


async def test_ex11_the_module_attaches_slave_brand_info(keydir: Path, tmp_path: Path) -> None:
    bus = ms_world(keydir, tmp_path, MasterConfig(allow=["wallet-b"]),
                   slave_brands={"wallet-b": ["mastercard"]})
    await order(bus, "s-ex11", ["mastercard"])
    assert bus.messages("kessai.selector.prompts") == []  # no address to type
    [req] = bus.messages(SLAVES, SlaveRequest)
    assert (req.action, req.slave_id) == ("proxy", "wallet-b")
    assert_only_via_master(bus)
    assert [r.outcome for r in user_results(bus)] == ["APPROVED"]


async def test_ex11_client_supplied_slave_off_the_allow_list_is_not_followed(
        keydir: Path, tmp_path: Path) -> None:
    bus = ms_world(keydir, tmp_path, MasterConfig(allow=["wallet-b"]),
                   slave_brands={"wallet-x": ["mastercard"]})
    await order(bus, "s-1", ["mastercard"])
    assert bus.log.get(SLAVES, []) == [] and seconds_from(bus) == []
    [u] = bus.messages("kessai.wakeups.unroutable", UnroutableWakeup)
    assert u.reason == "SLAVE_NOT_ALLOWED"


async def test_ex12_the_module_attaches_slave_info_and_the_user_designates(
        keydir: Path, tmp_path: Path) -> None:
    bus = ms_world(keydir, tmp_path, MasterConfig(allow=["wallet-b"]),
                   slave_info=["wallet-b", "wallet-x"])
    await order(bus, "s-ex12", ["mastercard"])
    [p] = bus.messages("kessai.selector.prompts", Prompt)
    assert (p.kind, p.candidates) == ("slave", ["wallet-b"])  # wallet-x: not on the list
    await bus.send("kessai.wallet.replies", PromptReply(p.wakeup_id, "carol", "wallet-x"),
                   "carol", "operator")
    await bus.send("kessai.wallet.replies", PromptReply(p.wakeup_id, "carol", "wallet-b"),
                   "carol", "operator")
    await bus.drain()
    assert [r.slave_id for r in bus.messages(SLAVES, SlaveRequest)] == ["wallet-b"]
    assert [r.outcome for r in user_results(bus)] == ["APPROVED"]


async def test_an_unpaired_module_gets_nothing_settled(keydir: Path, tmp_path: Path) -> None:
    # wum-carol-b is wallet-b's module: it asks wallet-a, which refuses.
    bus = world(keydir, tmp_path, with_selector=False,
                mods={"wum-carol-b": ModuleConfig("wum-carol-b", "carol", ["wallet-a"],
                                                  direct=True)})
    req = OrderRequest("s-1", "carol", "shop-1", [["XXXX", 1]], delivery_for("carol"),
                       scenario={"result_mode": "DIRECT_BOTH"})
    await bus.send("kessai.order-requests", req, "s-1", "wum-carol-b")
    await bus.drain()
    assert seconds_from(bus) == []
    assert "unpaired-module" in [m.kind for m in bus.messages("kessai.audit")]


async def test_the_masters_prompt_times_out_on_the_clock(keydir: Path, tmp_path: Path) -> None:
    bus = ms_world(keydir, tmp_path, MasterConfig(slave_info=["wallet-b"],
                                                  prompt_timeout_ms=30_000))
    await order(bus, "s-1", ["mastercard"])
    [p] = bus.messages("kessai.selector.prompts", Prompt)
    bus.clock.advance(29_000)  # type: ignore[attr-defined]
    await bus.tick()
    assert bus.messages("kessai.wakeups.unroutable") == []  # still waiting
    bus.clock.advance(1_001)  # type: ignore[attr-defined]
    await bus.tick()
    [u] = bus.messages("kessai.wakeups.unroutable", UnroutableWakeup)
    assert (u.wakeup_id, u.reason) == (p.wakeup_id, "USER_TIMEOUT")
    assert [(s.ok, s.via) for s in settled(bus)] == [(False, "none")]
    # A late answer changes nothing.
    await bus.send("kessai.wallet.replies", PromptReply(p.wakeup_id, "carol", "wallet-b"),
                   "carol", "operator")
    await bus.drain()
    assert bus.log.get(SLAVES, []) == [] and seconds_from(bus) == []


async def test_ex8_a_certificate_of_another_brand_is_refused(keydir: Path,
                                                             tmp_path: Path) -> None:
    # wallet-b says it settles jcb for carol, but the certificate it hands over is her
    # mastercard one: the master checks the certificate and settles nothing.
    bus = world(keydir, tmp_path, with_selector=False, mods=conventional(),
                holdings={"wallet-a": {"carol": ["visa"]},
                          "wallet-b": {"carol": ["mastercard", "jcb"]}},
                masters={"wallet-a": {"carol": MasterConfig(slave_brands={"wallet-b": ["jcb"]},
                                                            strategy="certificate")}})
    await order(bus, "s-1", ["jcb"])
    [ans] = bus.messages(SLAVES, SlaveAnswer)
    assert ans.ok and ans.certificate is not None and ans.certificate.brand == "mastercard"
    assert seconds_from(bus) == []
    [u] = bus.messages("kessai.wakeups.unroutable", UnroutableWakeup)
    assert u.reason == "BAD_CERTIFICATE"


async def test_ex8_a_silent_slave_makes_the_wakeup_unroutable_at_the_deadline(
        keydir: Path, tmp_path: Path) -> None:
    """[IMPL] Ex 8: the slave never answers the certificate request (its worker is down);
    at the master's certificate deadline the wake-up is unroutable (SLAVE_TIMEOUT) with its
    routing event, once, and a late certificate settles nothing."""
    bus = ms_world(keydir, tmp_path, MasterConfig(slave_brands={"wallet-b": ["mastercard"]},
                                                  strategy="certificate",
                                                  certificate_timeout_ms=20_000))
    sw = next(c for c in bus.contexts if c.name == "serverwallet")
    [to_slave] = [r for r in sw.routes.on(SLAVES) if SlaveRequest in r.types]
    answer_later = to_slave.handler
    sw.routes._by_topic[SLAVES].remove(to_slave)  # the slave is down
    await order(bus, "s-1", ["mastercard"])
    [req] = bus.messages(SLAVES, SlaveRequest)
    bus.clock.advance(19_000)  # type: ignore[attr-defined]
    await bus.tick()
    assert bus.messages("kessai.wakeups.unroutable") == []  # still waiting
    bus.clock.advance(1_001)  # type: ignore[attr-defined]
    await bus.tick()
    await bus.tick()
    [u] = bus.messages("kessai.wakeups.unroutable", UnroutableWakeup)
    assert (u.wakeup_id, u.reason) == (req.wakeup_id, "SLAVE_TIMEOUT")
    assert [(s.ok, s.via) for s in settled(bus)] == [(False, "none")]
    from schemas.selector import RoutingEvent
    assert [e.reason.split(":")[0] for e in bus.messages("kessai.selector.routing-events",
                                                         RoutingEvent)
            if e.decided_by == "wallet-a"][-1] == "SLAVE_TIMEOUT"
    # The slave comes back and answers: too late, nothing is settled.
    sw.routes._by_topic[SLAVES].append(to_slave)
    assert to_slave.handler is answer_later
    rec = bus.log[SLAVES][0]
    await sw.door.receive(rec.topic, rec.partition, rec.offset, rec.key, rec.value)
    await bus.drain()
    assert seconds_from(bus) == [] and len(bus.messages("kessai.wakeups.unroutable")) == 1
