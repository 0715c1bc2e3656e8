"""Batches at the edges (issue 6 item 4, kessai.batch): stores commit once per batch, before
the records the batch's handlers emitted are sent, and before any offset is committed."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from agents.issuer.ledger import Ledger
from agents.issuer.rules import Account
from agents.shop.orders import AWAITING_PAYMENT, Order, OrderDB
from agents.shop.pricing import price
from kessai import batch as batching
from kessai import transport
from kessai.batch import Batch
from kessai.money import Money
from sim.devdata import Catalogue

NOW = 1_700_000_000_000
ALICE = Account("4111111111111111", "2031-12", 1_000_000, "JPY")


def _count(path: Path, sql: str) -> int:
    """What another process reading the file sees (only committed writes)."""
    with closing(sqlite3.connect(path)) as other:
        return int(other.execute(sql).fetchone()[0])


class _Sent:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.records: list[tuple[str, bytes]] = []

    async def __call__(self, topic: str, key: bytes, value: bytes, partition: int | None,
                       headers: list[tuple[str, bytes]]) -> None:
        self.log.append(f"send {topic}")
        self.records.append((topic, key))


async def test_flush_commits_every_store_once_then_sends_the_held_records_in_order() -> None:
    log: list[str] = []
    sent = _Sent(log)
    b = Batch(sent)

    async def commit() -> None:
        log.append("commit")

    store = object()
    with b.active():
        for i in range(3):
            assert batching.defer_commit(store, commit)
            b.hold("kessai.t", str(i).encode(), b"v", None, [])
    assert batching.defer_commit(store, commit) is False  # outside a batch: commit at once
    assert log == []  # nothing leaves before the flush
    await b.flush()
    assert log == ["commit", "send kessai.t", "send kessai.t", "send kessai.t"]
    assert [k for _, k in sent.records] == [b"0", b"1", b"2"]
    await b.flush()
    assert len(log) == 4 and not b.pending


async def test_a_failed_commit_sends_nothing_and_keeps_the_batch_for_the_next_flush() -> None:
    log: list[str] = []
    b = Batch(_Sent(log))
    fail = [True]

    async def commit() -> None:
        if fail[0]:
            raise sqlite3.OperationalError("database is locked")
        log.append("commit")

    with b.active():
        batching.defer_commit(b, commit)
        b.hold("kessai.t", b"k", b"v", None, [])
    with pytest.raises(sqlite3.OperationalError):
        await b.flush()
    assert log == [] and b.pending
    fail[0] = False
    await b.flush()
    assert log == ["commit", "send kessai.t"]


def test_a_batch_is_full_after_max_records() -> None:
    b = Batch(_Sent([]), max_records=3)
    assert [b.handled_one() for _ in range(3)] == [False, False, True]


async def test_the_shop_commits_its_order_writes_once_per_batch(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    content = price([["XXXX", 1]], Catalogue().items)
    b = Batch(_Sent([]))
    async with OrderDB(path) as db:
        with b.active():
            for ref in ("1000000001", "1000000002"):
                stored = await db.add(Order("shop-1", ref, ref, "s", "alice", "VIA_TERMINAL",
                                            content, content.amount, AWAITING_PAYMENT), NOW)
                assert stored is not None and stored.order_id == ref  # read back in the batch
            assert await db.finalise("shop-1", "1000000001", "PAID", "APPROVED", by="m1")
        assert _count(path, "SELECT COUNT(*) FROM orders") == 0  # not committed yet
        await b.flush()
        assert _count(path, "SELECT COUNT(*) FROM orders") == 2
        assert _count(path, "SELECT COUNT(*) FROM orders WHERE status = 'PAID'") == 1
        await db.add(Order("shop-1", "1000000003", "1000000003", "s", "alice", "VIA_TERMINAL",
                           content, content.amount, AWAITING_PAYMENT), NOW)
        assert _count(path, "SELECT COUNT(*) FROM orders") == 3  # outside a batch: at once


async def test_the_issuer_stores_a_batch_of_decisions_in_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "issuer.sqlite"
    b = Batch(_Sent([]))
    async with await Ledger.open(path) as ledger:
        await ledger.seed([ALICE])
        with b.active():
            for i in range(3):
                d = await ledger.authorize(f"shop-1/{i}", ALICE.pan, ALICE.expiry,
                                           Money(100, "JPY"), NOW)
                assert d.approved
            # the limit already counts this batch's charges
            assert await ledger.balance(ALICE.pan) == Money(1_000_000 - 300, "JPY")
        assert _count(path, "SELECT COUNT(*) FROM decisions") == 0
        await b.flush()
        assert _count(path, "SELECT COUNT(*) FROM decisions") == 3


async def test_a_failing_authorization_in_a_batch_undoes_only_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "issuer.sqlite"
    b = Batch(_Sent([]))
    async with await Ledger.open(path) as ledger:
        await ledger.seed([ALICE])
        with b.active():
            await ledger.authorize("shop-1/a", ALICE.pan, ALICE.expiry, Money(100, "JPY"), NOW)
            original = ledger._used

            async def broken(digest: str) -> int:
                raise RuntimeError("disk on fire")

            monkeypatch.setattr(ledger, "_used", broken)
            with pytest.raises(RuntimeError):
                await ledger.authorize("shop-1/b", ALICE.pan, ALICE.expiry, Money(100, "JPY"),
                                       NOW)
            monkeypatch.setattr(ledger, "_used", original)
            await ledger.authorize("shop-1/c", ALICE.pan, ALICE.expiry, Money(100, "JPY"), NOW)
        await b.flush()
        with closing(sqlite3.connect(path)) as other:
            keys = [r[0] for r in other.execute("SELECT join_key FROM decisions ORDER BY 1")]
        assert keys == ["shop-1/a", "shop-1/c"]


async def test_offsets_are_committed_only_after_every_batch_is_flushed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    async def flush(producer: Any) -> None:
        order.append("producer acks")

    async def commit(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        order.append("commit offsets")
        return True

    async def store_commit() -> None:
        order.append("store commit")

    async def send(*record: Any) -> None:
        order.append("send")

    b = Batch(send)
    with b.active():
        batching.defer_commit(b, store_commit)
        b.hold("kessai.t", b"k", b"v", None, [])
    monkeypatch.setattr(transport, "durable_flush", flush)
    monkeypatch.setattr(faust_aiokafka.Consumer, "_commit_offsets", commit)
    consumer = object.__new__(transport._Consumer)
    consumer.__dict__["app"] = type("App", (), {"producer": object(), "kessai_batches": [b]})()
    assert await transport._Consumer._commit_offsets(consumer, {}) is True
    assert order == ["store commit", "send", "producer acks", "commit offsets"]



async def test_a_record_waits_for_the_flush_only_once_a_store_write_waits(
        keys_dir: Path) -> None:
    from kessai import keys
    from kessai.clock import FakeClock
    from kessai.runtime import Emitter
    from schemas.v1 import ResultAck

    log: list[str] = []
    sent = _Sent(log)
    emitter = Emitter("shop", {"shop-1": keys.load_actor(keys_dir, "shop-1")}, FakeClock(),
                      sent)
    b = Batch(sent)

    async def commit() -> None:
        log.append("commit")

    with b.active():
        await emitter.emit("kessai.payment-results.acks", ResultAck("shop-1", "o1"), "k1")
        assert log == ["send kessai.payment-results.acks"]  # no write waits: at once
        batching.defer_commit(b, commit)
        await emitter.emit("kessai.payment-results.acks", ResultAck("shop-1", "o2"), "k2")
        assert len(log) == 1  # announces a write not yet committed: held
    await b.flush()
    assert log == ["send kessai.payment-results.acks", "commit",
                   "send kessai.payment-results.acks"]
    assert [k for _, k in sent.records] == [b"k1", b"k2"]
