"""Changelog-backed tables for the aiokafka host (:mod:`kessai.aiokafka_host`).

A table is a ``bytes → bytes`` mapping whose every write is also a record on its changelog
topic (a deletion is a tombstone), so a worker that takes over a partition rebuilds that
partition's entries by reading the changelog partition from its beginning.

Which changelog partition a write goes to is the partition of the record being handled (the
same rule as faust's tables): the agents' topics are co-partitioned, so a table entry lives
beside the records that change it and moves with them on a rebalance. A write made outside a
handler (none of today's agents makes one) goes to the key's murmur2 partition.

The mapping is pure: writes are handed to a ``write`` callable, restores are fed in by the
host, so the partition bookkeeping is tested without a broker.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, MutableMapping

from aiokafka.partitioner import murmur2

Write = Callable[[str, bytes, "bytes | None", int], None]

# The partition of the record the running handler is handling (None outside a handler).
RECORD_PARTITION: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "kessai_record_partition", default=None)


def changelog_topic(agent: str, table: str) -> str:
    """The changelog topic of ``table`` of ``agent``: faust's name for it, so a system can move
    between the two hosts and keep its state."""
    return f"kessai-{agent}-{table}-changelog"


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class ChangelogTable(MutableMapping[bytes, bytes]):
    """The entries of the partitions this worker holds; every change goes to ``write``."""

    def __init__(self, topic: str, partitions: int, write: Write) -> None:
        if partitions < 1:
            raise ValueError(f"a table needs at least one partition, got {partitions}")
        self.topic = topic
        self.partitions = partitions
        self._write = write
        self._data: dict[bytes, bytes] = {}
        self._where: dict[bytes, int] = {}  # key → the changelog partition holding it

    def partition_for(self, key: bytes) -> int:
        p = RECORD_PARTITION.get()
        if p is None or p >= self.partitions:
            return key_partition(key, self.partitions)
        return p

    # -- the mapping -------------------------------------------------------------------------
    def __getitem__(self, key: bytes) -> bytes:
        return self._data[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        p = self.partition_for(key)
        old = self._where.get(key)
        if old is not None and old != p:
            self._write(self.topic, key, None, old)  # it moved: no stale copy to restore
        self._data[key] = value
        self._where[key] = p
        self._write(self.topic, key, value, p)

    def __delitem__(self, key: bytes) -> None:
        del self._data[key]
        p = self._where.pop(key)
        self._write(self.topic, key, None, p)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    # -- what the host does on a rebalance ---------------------------------------------------
    def held_partitions(self) -> set[int]:
        return set(self._where.values())

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the entries of ``partitions`` (another worker owns them now)."""
        gone = set(partitions)
        for key in [k for k, p in self._where.items() if p in gone]:
            del self._data[key]
            del self._where[key]

    def restored(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        """Apply one changelog record of ``partition`` (read in order; None is a deletion)."""
        if key is None:
            return
        if value is None:
            if self._where.get(key) == partition:
                del self._data[key]
                del self._where[key]
            return
        self._data[key] = value
        self._where[key] = partition
