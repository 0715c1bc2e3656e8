"""R-C3/R-C5: a module starts settlement only after a wake-up the selector handed to it, and
only with its paired server wallet; a server wallet settles only such a hand-over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.selector.routing import ClientConfig
from kessai import envelope
from schemas.selector import HandedWakeup, ModuleSettle, Preselection
from sim import devkeys
from sim.selector_world import buy, close_worlds, handed, seconds_from, world


@pytest.fixture(autouse=True)
async def _close() -> AsyncIterator[None]:
    yield
    await close_worlds()


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


async def test_modules_never_read_the_selectors_wakeups(keydir: Path, tmp_path: Path) -> None:
    bus = world(keydir, tmp_path)
    wum = next(c for c in bus.contexts if c.name == "wum")
    assert "kessai.wakeups.selector" not in wum.routes.topics()


async def test_a_hand_over_to_another_module_settles_nothing(keydir: Path,
                                                             tmp_path: Path) -> None:
    clients = {"carol": ClientConfig.parse("carol", {
        "mode": "preselect", "modules": {"wum-carol-a": "wallet-a", "wum-carol-b": "wallet-b"}})}
    bus = world(keydir, tmp_path, clients=clients,
                holdings={"wallet-a": {"carol": ["visa", "mastercard", "jcb"]},
                          "wallet-b": {"carol": ["visa", "mastercard", "jcb"]}})
    await bus.send("kessai.selector.preselections", Preselection("carol", "wum-carol-b"),
                   "carol", "operator")
    await buy(bus, "s-1")
    [h] = handed(bus)
    assert h.module_id == "wum-carol-b" and seconds_from(bus) == ["wallet-b"]
    # wum-carol-a replays the hand-over meant for wum-carol-b to its own server wallet.
    raw = bus.log["kessai.wum.wakeups"][0].value
    await bus.send("kessai.wallet.sessions",
                   ModuleSettle(h.wakeup_id, "carol", "wum-carol-a", "wallet-a", raw),
                   "carol", "wum-carol-a")
    # ... or presents the shop's wake-up itself, which only a module without a selector may.
    shop_m4 = bus.log["kessai.wakeups.selector"][0].value
    await bus.send("kessai.wallet.sessions",
                   ModuleSettle(h.wakeup_id, "carol", "wum-carol-a", "wallet-a", shop_m4),
                   "carol", "wum-carol-a")
    await bus.drain()
    assert seconds_from(bus) == ["wallet-b"]
    assert [m.kind for m in bus.messages("kessai.audit")].count("bad-session") == 2
    assert isinstance(envelope.body_of(envelope.decode(raw)), HandedWakeup)
