"""`kessai demo selector` and `kessai pay --flow selector --mode MODE`: seed 004's examples as
whole purchases, printing each wake-up's route and the settlement it led to.

By default on the running system (`kessai up`): each example is a development client of its
own whose configuration the workers read from the key set, and the simulated user answers
prompts on the selector's page (:mod:`sim.selector_live`). With ``--in-memory``: the real
shop, settlement, issuer, selector, modules and server wallets on the in-memory bus (real
signatures, real sealing; no broker), each example configured in-process, the simulated
user answering every prompt (a module, a slave, an address) as :data:`ANSWERS` says.

carol has two server wallets: wallet-a settles visa, wallet-b mastercard (sim.devdata).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.serverwallet.master import MasterConfig
from agents.wum.agent import ModuleConfig
from kessai import envelope, keys
from kessai.errors import ConfigError
from kessai.settings import Settings
from protocols.user import delivery_for
from schemas.selector import Preselection, Prompt, PromptReply, RoutingEvent, WalletSettled
from schemas.v1 import OrderRequest, PurchaseCommand
from sim import devkeys
from sim.selector_world import client, modules, user_results, world

# The simulated user's answers to prompts: the module or slave it picks, the address it types.
ANSWERS = {"module": "wum-carol-b", "slave": "wallet-b", "address": "wallet-b"}


@dataclass(frozen=True)
class Example:
    n: int
    claim: int
    title: str
    brands: list[str] | None = None
    world: dict[str, Any] = field(default_factory=dict)
    preselect: str = ""
    direct: bool = False  # no selector: the client's one module places the order
    start: bool = False  # start the agents first (the modules publish their brand info)


def _conventional(**kw: Any) -> dict[str, ModuleConfig]:
    return {"wum-carol-a": ModuleConfig("wum-carol-a", "carol", ["wallet-a"], direct=True, **kw)}


def _master(**kw: Any) -> dict[str, dict[str, MasterConfig]]:
    return {"wallet-a": {"carol": MasterConfig(**kw)}}


EXAMPLES: dict[str, Example] = {
    "preselect": Example(1, 2, "stored pre-selection (wum-carol-b)",
                         world={"clients": client("preselect")}, preselect="wum-carol-b"),
    "ask": Example(2, 3, "the user chooses on arrival", world={"clients": client("ask")}),
    "brand-selector": Example(3, 4, "brand info held by the selector", ["mastercard"],
                              {"clients": client("brand-selector")}),
    "brand-module": Example(4, 5, "brand info published by each module", ["mastercard"],
                            {"clients": client("brand-module")}, start=True),
    "brand-live": Example(5, 6, "brand info asked of the server wallets", ["visa"],
                          {"clients": client("brand-live")}),
    "multi": Example(6, 7, "one common module, no selector", ["mastercard"],
                     {"with_selector": False, "mods": modules(**{"wum-carol-m": ModuleConfig(
                         "wum-carol-m", "carol", ["wallet-a", "wallet-b"], multi=True,
                         direct=True)})}, direct=True),
    "proxy": Example(7, 8, "master proxies to the slave", ["mastercard"],
                     {"with_selector": False, "mods": _conventional(),
                      "masters": _master(slave_brands={"wallet-b": ["mastercard"]})},
                     direct=True),
    "certificate": Example(8, 9, "master fetches the slave's certificate", ["mastercard"],
                           {"with_selector": False, "mods": _conventional(),
                            "masters": _master(slave_brands={"wallet-b": ["mastercard"]},
                                               strategy="certificate")}, direct=True),
    "pick-slave": Example(9, 10, "the user designates a slave (master's info)", ["mastercard"],
                          {"with_selector": False, "mods": _conventional(),
                           "masters": _master(slave_info=["wallet-b"])}, direct=True),
    "address": Example(10, 11, "the user types the slave's address", ["mastercard"],
                       {"with_selector": False, "mods": _conventional(),
                        "masters": _master(ask_address=True, allow=["wallet-b"])},
                       direct=True),
    "attached-brands": Example(11, 12, "the module attaches slave brand info", ["mastercard"],
                               {"with_selector": False,
                                "mods": _conventional(slave_brands={"wallet-b": ["mastercard"]}),
                                "masters": _master(allow=["wallet-b"])}, direct=True),
    "attached-slaves": Example(12, 13, "the module attaches slave info; the user designates",
                               ["mastercard"],
                               {"with_selector": False,
                                "mods": _conventional(slave_info=["wallet-b"]),
                                "masters": _master(allow=["wallet-b"])}, direct=True),
}
MODES = tuple(EXAMPLES)


async def run_example(keydir: Path, data: Path, name: str) -> dict[str, Any]:
    """One purchase of example ``name``; its route and settlement as a JSON-able dict."""
    ex = EXAMPLES[name]
    bus = world(keydir, data, **ex.world)
    try:
        if ex.start:
            await bus.start()
        if ex.preselect:
            await bus.send("kessai.selector.preselections", Preselection("carol", ex.preselect),
                           "carol", "operator")
        scenario: dict[str, Any] = {"result_mode": "DIRECT_BOTH"}
        if ex.brands is not None:
            scenario["brands"] = ex.brands
        if ex.direct:
            await bus.send("kessai.order-requests", OrderRequest(
                f"sel-{name}", "carol", "shop-1", [["XXXX", 1]], delivery_for("carol"),
                scenario=scenario), f"sel-{name}", "wum-carol-m" if name == "multi"
                else "wum-carol-a")
        else:
            await bus.send("kessai.selector.commands", PurchaseCommand(
                f"sel-{name}", "carol", "shop-1", [["XXXX", 1]], scenario=scenario),
                "carol", "operator")
        await bus.drain()
        answered = []
        for p in bus.messages("kessai.selector.prompts", Prompt):
            topic = "kessai.selector.replies" if p.asked_by == "selector" else \
                "kessai.wallet.replies"
            await bus.send(topic, PromptReply(p.wakeup_id, "carol", ANSWERS[p.kind]), "carol",
                           "operator")
            answered.append({"asked_by": p.asked_by, "kind": p.kind, "offered": p.candidates,
                             "answer": ANSWERS[p.kind]})
        await bus.drain()
        wake = bus.messages("kessai.wakeups.wum" if ex.direct else "kessai.wakeups.selector")
        events = bus.messages("kessai.selector.routing-events", RoutingEvent)
        settled = bus.messages("kessai.wallet.settled", WalletSettled)
        seconds = [envelope.decode(r.value).sender
                   for r in bus.log.get("kessai.settlement.second", [])]
        results = user_results(bus)
        return {
            "example": ex.n, "claim": ex.claim, "mode": name, "title": ex.title,
            "wakeup_id": events[0].wakeup_id if events else "",
            "order_id": wake[0].order_id if wake else "",
            "brands": wake[0].brands if wake else [],
            "route": [{"by": e.decided_by, "chosen": e.chosen, "reason": e.reason}
                      for e in events],
            "prompts": answered,
            "settled_by": seconds, "via": [s.via for s in settled],
            "outcome": results[0].outcome if results else "NONE",
        }
    finally:
        await bus.stop()


def print_example(r: dict[str, Any], out: Any = None) -> None:
    out = out or sys.stdout
    out.write(f"Ex {r['example']} (claim {r['claim']}) {r['mode']}: {r['title']}\n")
    out.write(f"  wake-up {r['wakeup_id']}  brands {','.join(r['brands'])}\n")
    for p in r["prompts"]:
        article = "an" if p["kind"] == "address" else "a"
        out.write(f"  prompt  {p['asked_by']} asks for {article} {p['kind']} "
                  f"{p['offered'] or ''} → the user answers {p['answer']}\n")
    for hop in r["route"]:
        out.write(f"  route   {hop['by']} → {hop['chosen'] or '-'}: {hop['reason']}\n")
    out.write(f"  settle  2nd request from {', '.join(r['settled_by']) or 'nobody'} "
              f"(via {', '.join(r['via']) or '-'}) → {r['outcome']}\n")


def run(names: list[str], keys_dir: Path, as_json: bool) -> int:
    devkeys.ensure(keys_dir)
    if "selector" not in keys.load_registry(keys_dir).signing:
        raise ConfigError(f"the key set in {keys_dir} predates the selector; make a new one "
                          "with 'kessai keys init --force'")

    async def all_of() -> list[dict[str, Any]]:
        out = []
        with tempfile.TemporaryDirectory(prefix="kessai-selector-") as tmp:
            for name in names:
                out.append(await run_example(keys_dir, Path(tmp) / name, name))
        return out

    results = asyncio.run(all_of())
    for r in results:
        if as_json:
            print(json.dumps(r))
        else:
            print_example(r)
    return 0 if all(r["outcome"] == "APPROVED" for r in results) else 1


def run_live(names: list[str], settings: Settings, page_url: str, as_json: bool,
             timeout: float) -> int:
    """The examples on the running system (`kessai up`): each example's development client,
    configured by the key set; prompts answered on the selector's page at ``page_url``."""
    from sim import selector_live

    if "wum-carol-ex2-a" not in keys.load_registry(settings.keys_dir).signing:
        raise ConfigError(f"the key set in {settings.keys_dir} predates the per-example "
                          "clients of seed 004; make a new one with 'kessai keys init --force'")
    results = asyncio.run(selector_live.run_live(settings, names, page_url, timeout))
    for r in results:
        ex = EXAMPLES[r["mode"]]
        r.update(claim=ex.claim, title=ex.title)
        if as_json:
            print(json.dumps(r))
        else:
            print_example(r)
    return 0 if all(r["outcome"] == "APPROVED" for r in results) else 1


def run_cli(args: argparse.Namespace, settings: Settings, demo: bool) -> int:
    """``demo``: every example; otherwise the one ``--mode`` names. On the running system
    (the broker at ``--bootstrap``), or with ``--in-memory`` on the in-memory bus."""
    if demo:
        names = list(MODES)
    elif args.mode not in MODES:
        raise ConfigError(f"--flow selector needs --mode one of {', '.join(MODES)}")
    else:
        names = [args.mode]
    if getattr(args, "in_memory", False):
        return run(names, settings.keys_dir, args.json)
    from agents.selector.console import port_from_env

    page_url = args.selector_url or f"http://127.0.0.1:{port_from_env()}"
    return run_live(names, settings, page_url.rstrip("/"), args.json, args.timeout)
