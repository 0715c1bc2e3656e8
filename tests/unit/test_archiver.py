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
