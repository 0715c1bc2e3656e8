"""The seed-004 world on the in-memory bus (tests and `kessai demo selector`): the real shop,
settlement, issuer, selector, carol's wallet connection modules and the server wallets'
seed-004 side, each configured per example."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.selector import agent as selector_agent
from agents.selector.routing import ClientConfig
from agents.serverwallet import agent as serverwallet_agent
from agents.serverwallet.master import MasterConfig
from agents.wum import agent as wum_agent
from agents.wum.agent import ModuleConfig
from kessai import envelope
from kessai.clock import FakeClock
from kessai.membus import MemoryBus
from kessai.settings import Settings
from kessai.worker import identities
from schemas.selector import HandedWakeup, UnroutableWakeup
from schemas.v1 import PaymentResult, PurchaseCommand

MODULES = {"wum-carol-a": "wallet-a", "wum-carol-b": "wallet-b"}
HOLDINGS = {"wallet-a": {"carol": ["visa"]}, "wallet-b": {"carol": ["mastercard"]}}
PAIRED = {"wallet-a": {"wum-carol-a": "carol", "wum-carol-m": "carol"},
          "wallet-b": {"wum-carol-b": "carol", "wum-carol-m": "carol"}}


def client(mode: str, **kw: Any) -> dict[str, ClientConfig]:
    cfg = ClientConfig.parse("carol", {"mode": mode, "modules": MODULES,
                                       "brands": {"wallet-a": ["visa"],
                                                  "wallet-b": ["mastercard"]}, **kw})
    return {"carol": cfg}


def modules(**extra: ModuleConfig) -> dict[str, ModuleConfig]:
    base = {"wum-carol-a": ModuleConfig("wum-carol-a", "carol", ["wallet-a"], ["visa"]),
            "wum-carol-b": ModuleConfig("wum-carol-b", "carol", ["wallet-b"], ["mastercard"])}
    return {**base, **extra}


OPEN: list[MemoryBus] = []  # closed by each test module's autouse fixture (close_worlds)


async def close_worlds() -> None:
    while OPEN:
        await OPEN.pop().stop()


def world(keydir: Path, data: Path, *, clients: Mapping[str, ClientConfig] | None = None,
          mods: Mapping[str, ModuleConfig] | None = None,
          holdings: Mapping[str, dict[str, list[str]]] | None = None,
          masters: Mapping[str, dict[str, MasterConfig]] | None = None,
          with_selector: bool = True) -> MemoryBus:
    import importlib

    from agents import AGENTS

    bus = MemoryBus(Settings(keys_dir=keydir, data_dir=data), FakeClock())
    OPEN.append(bus)
    for name in ("shop", "settlement", "issuer"):
        module = importlib.import_module(AGENTS[name])
        bus.add(name, module.register, identities(module, bus.registry.signing))
    if with_selector:
        bus.add("selector", lambda ctx: selector_agent.register(
            ctx, clients if clients is not None else client("preselect")), ["selector"])
    wum_ids = identities(wum_agent, bus.registry.signing)
    mods = mods if mods is not None else modules()
    bus.add("wum", lambda ctx: wum_agent.register(ctx, mods), wum_ids)
    direct = frozenset(m for m, c in mods.items() if c.direct)
    bus.add("serverwallet", lambda ctx: serverwallet_agent.register(
        ctx, holdings=dict(holdings or HOLDINGS), modules=PAIRED, masters=dict(masters or {}),
        direct=direct),
        identities(serverwallet_agent, bus.registry.signing))
    return bus


async def buy(bus: MemoryBus, session: str, brands: list[str] | None = None,
              user: str = "carol") -> PurchaseCommand:
    scenario: dict[str, Any] = {"result_mode": "DIRECT_BOTH"}
    if brands is not None:
        scenario["brands"] = brands
    cmd = PurchaseCommand(session=session, user_id=user, shop_id="shop-1",
                          items=[["XXXX", 1]], scenario=scenario)
    await bus.send("kessai.selector.commands", cmd, user, "operator")
    await bus.drain()
    return cmd


def handed(bus: MemoryBus) -> list[HandedWakeup]:
    return bus.messages("kessai.wum.wakeups", HandedWakeup)


def unroutable(bus: MemoryBus) -> list[UnroutableWakeup]:
    return bus.messages("kessai.wakeups.unroutable", UnroutableWakeup)


def deliveries(bus: MemoryBus) -> dict[str, int]:
    """Per wake-up id: deliveries over every module input plus the unroutable topic (R-C2)."""
    count: dict[str, int] = {}
    for rec in bus.log.get("kessai.wum.wakeups", []) + bus.log.get("kessai.wakeups.unroutable",
                                                                   []):
        wid = envelope.body_of(envelope.decode(rec.value)).wakeup_id
        count[wid] = count.get(wid, 0) + 1
    return count


def user_results(bus: MemoryBus) -> list[PaymentResult]:
    return [r for r in bus.messages("kessai.payment-results", PaymentResult)
            if r.recipient == "user"]


def seconds_from(bus: MemoryBus) -> list[str]:
    return [envelope.decode(r.value).sender for r in bus.log.get("kessai.settlement.second", [])]
