"""The consumer commits only what is durable, and the fetch wait adapts (kessai.transport)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from kessai import transport
from kessai.errors import ConfigError
from kessai.settings import Waits, waits_from_env


class _Buffer:
    def __init__(self, n: int) -> None:
        self.pending: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            self.pending.put_nowait(i)
        self.sent: list[int] = []

    async def _send_pending(self, item: int) -> None:
        await asyncio.sleep(0.02)  # a slow broker: faust's own flush gives up after 0.1 s
        self.sent.append(item)


class _Inner:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def flush(self) -> None:
        self.log.append("acked")


class _Producer:
    def __init__(self, n: int, log: list[str]) -> None:
        self.buffer = _Buffer(n)
        self._producer = _Inner(log)


async def test_durable_flush_sends_every_buffered_write_then_waits_for_acks() -> None:
    log: list[str] = []
    producer = _Producer(20, log)  # 20 × 20 ms: far beyond faust's 0.1 s flush budget
    await transport.durable_flush(producer)
    assert producer.buffer.sent == list(range(20))
    assert producer.buffer.pending.empty() and log == ["acked"]


async def test_offsets_are_committed_only_after_the_durable_flush(
        monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    async def flush(producer: Any) -> None:
        await asyncio.sleep(0)
        order.append("flush")

    async def commit(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        order.append("commit")
        return True

    monkeypatch.setattr(transport, "durable_flush", flush)
    monkeypatch.setattr(faust_aiokafka.Consumer, "_commit_offsets", commit)
    consumer = object.__new__(transport._Consumer)
    consumer.__dict__["app"] = type("App", (), {"producer": object()})()
    assert await transport._Consumer._commit_offsets(consumer, {}) is True
    assert order == ["flush", "commit"]


def test_fetch_wait_is_short_while_records_flow_and_grows_when_idle() -> None:
    now = [0.0]
    waits = Waits(fetch_wait_busy_ms=4, fetch_wait_idle_ms=250, idle_after_ms=2_000)
    w = transport.AdaptiveWait(waits, clock=lambda: now[0])
    assert w.on_fetch(True) == 4
    now[0] = 1.0
    assert w.on_fetch(False) == 4  # idle for less than idle_after: stay short
    now[0] = 2.5
    grown = [w.on_fetch(False) for _ in range(10)]
    assert grown[0] == 8 and grown == sorted(grown) and grown[-1] == 250
    assert w.on_fetch(True) == 4  # data again: short at once


def test_waits_per_broker_kind_and_validation() -> None:
    from kessai.errors import ConfigError

    assert Waits.for_kind("embedded").fetch_wait_busy_ms < 20
    assert Waits.for_kind("embedded").quiet_cap_ms == 20
    assert Waits.for_kind("kafka").fetch_wait_busy_ms == 500  # Kafka's own default
    with pytest.raises(ConfigError, match="broker kind"):
        Waits.for_kind("pulsar")
    with pytest.raises(ConfigError, match="at least"):
        Waits(fetch_wait_busy_ms=50, fetch_wait_idle_ms=10)


def test_partitions_with_nothing_committed_are_read_from_the_beginning() -> None:
    from faust.types import TP

    tps = [TP("kessai.settlement.second", p) for p in range(4)] + [TP("x-changelog", 0)]
    committed = {tps[0]: None, tps[1]: 5, tps[2]: 0}
    fresh = transport.never_committed(set(tps), committed, lambda tp: tp.topic == "x-changelog")
    assert fresh == [tps[0], tps[2], tps[3]]


async def test_after_an_assignment_never_committed_partitions_are_sought_to_the_beginning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from faust.types import TP

    sought: list[Any] = []
    a, b = TP("kessai.settlement.second", 0), TP("kessai.settlement.second", 1)

    async def stock_seek(self: Any) -> None:  # faust's: seek to committed, which skips `a`
        self._committed_offset.update({b: 7})

    class _Thread:
        async def seek_to_beginning(self, *tps: Any) -> None:
            sought.extend(tps)

    monkeypatch.setattr(faust_aiokafka.Consumer, "perform_seek", stock_seek)
    consumer = object.__new__(transport._Consumer)
    consumer.__dict__.update(_thread=_Thread(), _committed_offset={},
                             _read_offset={a: 3, b: 7})
    monkeypatch.setattr(transport._Consumer, "assignment", lambda self: {a, b})
    monkeypatch.setattr(transport._Consumer, "_is_changelog_tp", lambda self, tp: False)
    await transport._Consumer.perform_seek(consumer)
    assert sought == [a] and consumer._read_offset[a] is None and consumer._read_offset[b] == 7
    from aiokafka import TopicPartition

    assert all(type(tp) is TopicPartition for tp in sought)  # aiokafka refuses faust's TP


def test_a_quiet_cap_lets_empty_fetches_back_off_before_the_idle_time() -> None:
    now = [0.0]
    waits = Waits(fetch_wait_busy_ms=4, fetch_wait_idle_ms=250, idle_after_ms=2_000,
                  fetch_wait_quiet_ms=20)
    w = transport.AdaptiveWait(waits, clock=lambda: now[0])
    w.on_fetch(True)
    now[0] = 0.1
    assert [w.on_fetch(False) for _ in range(4)] == [8, 16, 20, 20]  # quiet, not yet idle
    now[0] = 3.0
    assert w.on_fetch(False) == 40  # idle: on towards the idle wait
    assert w.on_fetch(True) == 4


def test_a_system_left_alone_backs_off_to_the_deep_idle_wait() -> None:
    now = [0.0]
    waits = Waits(fetch_wait_busy_ms=4, fetch_wait_idle_ms=250, idle_after_ms=2_000,
                  fetch_wait_quiet_ms=20, fetch_wait_deep_ms=1000, deep_idle_after_ms=30_000)
    w = transport.AdaptiveWait(waits, clock=lambda: now[0])
    w.on_fetch(True)
    now[0] = 3.0
    assert [w.on_fetch(False) for _ in range(8)][-1] == 250  # idle: capped at the idle wait
    now[0] = 29.9
    assert w.on_fetch(False) == 250  # a pause shorter than deep_idle_after keeps it
    now[0] = 30.0
    assert [w.on_fetch(False) for _ in range(3)] == [500, 1000, 1000]
    assert w.on_fetch(True) == 4  # the first record: short again at once


def test_the_deep_idle_tier_is_validated_and_follows_the_idle_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert Waits.for_kind("embedded").fetch_wait_deep_ms == 1000
    assert Waits.for_kind("kafka").fetch_wait_deep_ms == 0  # Kafka answers a waiting fetch
    with pytest.raises(ConfigError, match="fetch_wait_deep_ms"):
        Waits(fetch_wait_busy_ms=4, fetch_wait_idle_ms=250, fetch_wait_deep_ms=100)
    with pytest.raises(ConfigError, match="deep_idle_after_ms"):
        Waits(fetch_wait_busy_ms=4, fetch_wait_idle_ms=250, fetch_wait_deep_ms=1000,
              deep_idle_after_ms=1000)
    monkeypatch.setenv("KESSAI_FETCH_WAIT_IDLE_MS", "2000")
    assert waits_from_env("embedded").fetch_wait_deep_ms == 2000  # never below the idle wait
    monkeypatch.setenv("KESSAI_FETCH_WAIT_DEEP_MS", "0")
    assert waits_from_env("embedded").fetch_wait_deep_ms == 0


def test_adapt_fetcher_sets_the_wait_of_the_next_fetch_after_each_round() -> None:
    """The wrap the workers and the archiver use: an empty round lengthens the aiokafka
    fetcher's ``_fetch_max_wait_ms``, a round with records makes it short again."""
    waits = Waits(fetch_wait_busy_ms=4, fetch_wait_idle_ms=250, fetch_wait_quiet_ms=20)
    results = iter([False, False, True])

    class _Fetcher:
        _fetch_max_wait_ms = 1500  # aiokafka's: faust's constant

        async def _proc_fetch_request(self, *args: Any) -> bool:
            return next(results)

    class _Consumer:
        _fetcher = _Fetcher()

    consumer = _Consumer()
    transport.adapt_fetcher(consumer, waits)
    fetcher = consumer._fetcher
    assert fetcher._fetch_max_wait_ms == 4
    seen = []
    for _ in range(3):
        asyncio.run(fetcher._proc_fetch_request(None, 0, None))
        seen.append(fetcher._fetch_max_wait_ms)
    assert seen == [8, 16, 4]
