"""The archiver's pure chain and its store (issue 10): one row per offset under redelivery,
links that bind each row to the one before, heads that survive a reopen, all-or-nothing
batches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agents.archiver.chain import GENESIS, Chains, expected_hash, row_hash
from agents.archiver.store import ArchiveStore


def rec(offset: int, value: bytes = b"v", partition: int = 0, topic: str = "kessai.t"
        ) -> tuple[str, int, int, int, bytes, list[tuple[str, bytes]], bytes]:
    return (topic, partition, offset, 1_000 + offset, b"k", [("kessai-type", b"x")], value)


def test_rows_link_to_the_row_before_and_hash_their_contents() -> None:
    chains = Chains()
    rows = chains.extend([rec(0), rec(1), rec(0, partition=1)])
    assert [r.prev_hash for r in rows] == [GENESIS, rows[0].hash, GENESIS]
    assert all(expected_hash(r) == r.hash for r in rows)
    assert rows[0].hash != rows[2].hash  # the partition is part of the hash
    changed = row_hash(rows[1].prev_hash, "kessai.t", 0, 1, 1_001, b"k", rows[1].headers,
                       b"w")
    assert changed != rows[1].hash


def test_a_redelivered_offset_is_stored_once() -> None:
    chains = Chains()
    first = chains.extend([rec(0), rec(1)])
    again = chains.extend([rec(1), rec(2)])  # offset 1 comes again after a restart
    assert [r.offset for r in again] == [2]
    assert again[0].prev_hash == first[1].hash
    assert chains.heads[("kessai.t", 0)].records == 3


async def test_heads_survive_a_reopen_and_a_failed_batch_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    chains = Chains()
    store = await ArchiveStore.open(path)
    await store.append(chains.extend([rec(0), rec(1)]))
    await store.close()

    store = await ArchiveStore.open(path)
    reopened = Chains(await store.heads())
    assert reopened.heads == chains.heads
    batch = reopened.extend([rec(2), rec(3)])
    with pytest.raises(sqlite3.IntegrityError):
        await store.append([*batch, batch[0]])  # the same offset twice: the batch fails
    assert await store.heads() == chains.heads  # nothing of it was written
    await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 2
    db.close()


def test_the_archiver_waits_at_least_the_idle_wait_and_deepens_like_the_workers() -> None:
    from agents.archiver.agent import archive_waits
    from kessai.settings import Waits

    embedded = archive_waits(Waits.for_kind("embedded"))
    assert embedded is not None
    idle = Waits.for_kind("embedded").fetch_wait_idle_ms
    assert embedded.fetch_wait_busy_ms == idle  # records flowing: still the idle wait
    assert embedded.quiet_cap_ms == idle
    assert embedded.fetch_wait_deep_ms == Waits.for_kind("embedded").fetch_wait_deep_ms
    assert embedded.deep_idle_after_ms == Waits.for_kind("embedded").deep_idle_after_ms
    assert archive_waits(Waits.for_kind("kafka")) is None  # one wait, no tiers


def test_an_archived_checkpoint_alone_does_not_call_for_another() -> None:
    from agents.archiver.agent import heads_to_sign
    from topics.catalogue import CHECKPOINTS

    chains = Chains()
    chains.extend([rec(0), rec(1)])
    signed = heads_to_sign(chains.heads)
    chains.extend([rec(0, topic=CHECKPOINTS)])  # the archiver's own checkpoint, read back
    assert heads_to_sign(chains.heads) == signed
    chains.extend([rec(2)])  # anything else is new
    assert heads_to_sign(chains.heads) != signed
