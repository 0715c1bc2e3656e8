"""Wake-ups are addressed by topic (issue 8 item 3, DESIGN §4): the shop's M4 goes to the
wake-up topic of the channel that placed the order, and each wake-up topic has exactly one
reader, so no agent reads and drops wake-ups meant for another."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents import AGENTS
from kessai.clock import FakeClock
from kessai.membus import MemoryBus
from kessai.settings import Settings
from kessai.worker import identities
from protocols.user import delivery_for
from schemas.v1 import OrderRequest, PaymentRequest
from sim import devkeys
from topics.catalogue import CATALOGUE, WAKEUP_TOPICS, by_name, wakeup_topic

ITEMS = [["XXXX", 1]]


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


@pytest.fixture
async def bus(keydir: Path, tmp_path: Path) -> AsyncIterator[MemoryBus]:
    b = MemoryBus(Settings(keys_dir=keydir, data_dir=tmp_path), FakeClock())
    module = importlib.import_module(AGENTS["shop"])
    b.add("shop", module.register, identities(module, b.registry.signing))
    yield b
    await b.stop()


def test_each_wakeup_topic_has_one_reader_its_channel() -> None:
    for channel, topic in WAKEUP_TOPICS.items():
        spec = by_name(topic)
        assert spec.readers == (channel,), topic
        assert spec.producers == ("shop",)
    # No other topic a device or module reads carries the shop's wake-ups.
    wake = {t.name for t in CATALOGUE if t.name.startswith("kessai.wakeups")}
    assert wake - set(WAKEUP_TOPICS.values()) == {"kessai.wakeups.unroutable"}
    with pytest.raises(KeyError):
        wakeup_topic("shop")


@pytest.mark.parametrize("placer", ["terminal", "relay", "selector"])
async def test_the_wakeup_goes_back_to_the_channel_that_placed_the_order(
        bus: MemoryBus, placer: str) -> None:
    await bus.send("kessai.order-requests",
                   OrderRequest(f"s-{placer}", "carol", "shop-1", ITEMS, delivery_for("carol")),
                   f"s-{placer}", placer)
    await bus.drain()
    got = {t: bus.messages(t, PaymentRequest) for t in WAKEUP_TOPICS.values()}
    assert {t: len(m) for t, m in got.items()} == {
        t: int(t == wakeup_topic(placer)) for t in WAKEUP_TOPICS.values()}
    [record] = bus.log[wakeup_topic(placer)]
    # The selector's topic is keyed by client, the others by join key.
    [request] = got[wakeup_topic(placer)]
    expected = "carol" if placer == "selector" else f"shop-1/{request.order_id}"
    assert record.key == expected.encode()


def test_the_terminal_and_the_relay_read_only_their_own_channel(keydir: Path,
                                                                tmp_path: Path) -> None:
    for agent, channel in (("terminal", "terminal"), ("relay", "relay")):
        module = importlib.import_module(AGENTS[agent])
        b = MemoryBus(Settings(keys_dir=keydir, data_dir=tmp_path / agent), FakeClock())
        ctx = b.add(agent, module.register, identities(module, b.registry.signing))
        read = {r.topic for r in ctx.routes if r.topic in WAKEUP_TOPICS.values()}
        assert read == {wakeup_topic(channel)}
