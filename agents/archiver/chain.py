"""The archive's hash chains (issue 10): one per topic-partition, pure and shared with the audit.

Each archived row holds the hash of the row before it in its partition and its own hash over
that link and every field of the record as the broker delivered it::

    hash = SHA-256("kessai/archive/v1\\0" + prev_hash
                   + msgpack([topic, partition, offset, timestamp_ms, key, headers, value]))

The first row of a partition links to :data:`GENESIS`. Changing any byte of a row, removing a
row or swapping two breaks a link; rewriting a whole chain consistently changes its head, which
no longer matches the archiver's signed checkpoints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgpack

from schemas.v1 import ChainHead, Checkpoint

DOMAIN = b"kessai/archive/v1\x00"
GENESIS = bytes(32)

Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Row:
    """One archived record and its chain link."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: bytes  # msgpack list of [name, value], as delivered
    value: bytes | None
    prev_hash: bytes
    hash: bytes


def pack_headers(headers: Headers | None) -> bytes:
    return msgpack.packb([[k, v] for k, v in headers or ()], use_bin_type=True)


def unpack_headers(raw: bytes) -> list[tuple[str, bytes | None]]:
    return [(k, v) for k, v in msgpack.unpackb(raw, raw=False)]


def row_hash(prev_hash: bytes, topic: str, partition: int, offset: int, timestamp_ms: int,
             key: bytes | None, headers: bytes, value: bytes | None) -> bytes:
    """The hash of one row given the hash of the row before it (``headers`` packed)."""
    fields = msgpack.packb([topic, partition, offset, timestamp_ms, key, headers, value],
                           use_bin_type=True)
    return hashlib.sha256(DOMAIN + prev_hash + fields).digest()


def expected_hash(row: Row) -> bytes:
    return row_hash(row.prev_hash, row.topic, row.partition, row.offset, row.timestamp_ms,
                    row.key, row.headers, row.value)


@dataclass(frozen=True)
class Head:
    offset: int
    hash: bytes
    records: int


class Chains:
    """The heads of every partition's chain; extends them with newly delivered records.

    Idempotent under redelivery: a record at or below its partition's head offset is already
    archived and is skipped, so the same offset is stored once.
    """

    def __init__(self, heads: dict[tuple[str, int], Head] | None = None) -> None:
        self.heads: dict[tuple[str, int], Head] = dict(heads or {})

    def extend(self, records: Iterable[tuple[str, int, int, int, bytes | None, Headers | None,
                                             bytes | None]]) -> list[Row]:
        """Rows for the records not archived yet, in the order given (offset order per
        partition). The heads advance; the caller writes the rows in one transaction and, if
        that fails, rebuilds the heads from the archive."""
        rows: list[Row] = []
        for topic, partition, offset, ts, key, headers, value in records:
            head = self.heads.get((topic, partition))
            if head is not None and offset <= head.offset:
                continue  # redelivered: stored once already
            prev = head.hash if head is not None else GENESIS
            packed = pack_headers(headers)
            h = row_hash(prev, topic, partition, offset, ts, key, packed, value)
            rows.append(Row(topic, partition, offset, ts, key, packed, value, prev, h))
            self.heads[(topic, partition)] = Head(offset, h,
                                                  (head.records if head else 0) + 1)
        return rows


def checkpoint(chains: Chains, archive_id: str, seq: int, policy: dict[str, int]) -> Checkpoint:
    """The checkpoint stating every head of ``chains`` (the archiver signs and sends it)."""
    heads = [ChainHead(t, p, h.offset, h.hash, h.records)
             for (t, p), h in sorted(chains.heads.items())]
    return Checkpoint(archive_id, seq, heads, policy)
