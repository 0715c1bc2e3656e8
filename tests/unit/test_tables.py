"""The aiokafka host's changelog-backed table: where each write goes, and how a rebalance drops
and rebuilds partitions (no broker: the host feeds it)."""

from __future__ import annotations

import pytest

from kessai.tables import RECORD_PARTITION, ChangelogTable, changelog_topic, key_partition

Written = list[tuple[str, bytes, "bytes | None", int]]


def make(partitions: int = 4) -> tuple[ChangelogTable, Written]:
    written: Written = []
    table = ChangelogTable("kessai-a-t-changelog", partitions,
                           lambda *w: written.append(w))
    return table, written


def write_in_handler(table: ChangelogTable, partition: int, key: bytes, value: bytes) -> None:
    """``table[key] = value`` as a handler of a record of ``partition`` makes it."""
    token = RECORD_PARTITION.set(partition)
    try:
        table[key] = value
    finally:
        RECORD_PARTITION.reset(token)


def test_the_changelog_topic_keeps_fausts_name() -> None:
    assert changelog_topic("settlement", "settlement-join") == \
        "kessai-settlement-settlement-join-changelog"


def test_a_write_in_a_handler_goes_to_the_handled_records_partition() -> None:
    table, written = make()
    write_in_handler(table, 2, b"k", b"v")
    assert written == [("kessai-a-t-changelog", b"k", b"v", 2)]
    assert table[b"k"] == b"v" and table.held_partitions() == {2}


def test_a_write_outside_a_handler_goes_to_the_keys_partition() -> None:
    table, written = make()
    table[b"order-7"] = b"v"
    assert written[0][3] == key_partition(b"order-7", 4)
    # The same partition Kafka's default partitioner gives the key.
    from aiokafka.partitioner import DefaultPartitioner
    assert key_partition(b"order-7", 4) == DefaultPartitioner()(b"order-7", [0, 1, 2, 3],
                                                                 [0, 1, 2, 3])


def test_a_handled_partition_beyond_the_tables_falls_back_to_the_key() -> None:
    table, written = make(partitions=2)
    for p in (2, 3):  # the table's partitions are 0 and 1
        write_in_handler(table, p, f"k{p}".encode(), b"v")
    assert [w[3] for w in written] == [key_partition(b"k2", 2), key_partition(b"k3", 2)]
    assert {w[3] for w in written} <= {0, 1}


def test_a_table_needs_a_partition_and_one_is_enough() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        make(partitions=0)
    table, written = make(partitions=1)
    table[b"k"] = b"v"
    assert written == [("kessai-a-t-changelog", b"k", b"v", 0)]


def test_a_deletion_is_a_tombstone_on_the_entrys_partition() -> None:
    table, written = make()
    write_in_handler(table, 1, b"k", b"v")
    del table[b"k"]
    assert written[-1] == ("kessai-a-t-changelog", b"k", None, 1)
    assert b"k" not in table and len(table) == 0
    with pytest.raises(KeyError):
        del table[b"k"]


def test_an_entry_written_from_another_partition_leaves_a_tombstone_behind() -> None:
    """Else the old partition's changelog would bring the stale copy back on a rebuild."""
    table, written = make()
    for p in (1, 3):
        write_in_handler(table, p, b"k", f"v{p}".encode())
    assert written[1:] == [("kessai-a-t-changelog", b"k", None, 1),
                           ("kessai-a-t-changelog", b"k", b"v3", 3)]


def test_drop_forgets_only_the_lost_partitions() -> None:
    table, _ = make()
    table.restored(0, b"a", b"1")
    table.restored(1, b"b", b"2")
    table.restored(2, b"c", b"3")
    table.drop([1, 2])
    assert dict(table) == {b"a": b"1"} and table.held_partitions() == {0}


def test_restore_applies_the_changelog_in_order_with_tombstones() -> None:
    table, written = make()
    table.restored(2, b"a", b"1")
    table.restored(2, b"a", b"2")
    table.restored(2, b"b", b"x")
    table.restored(2, b"b", None)
    table.restored(2, None, b"keyless")  # not a table record: ignored
    assert dict(table) == {b"a": b"2"}
    assert written == [], "a rebuild writes nothing back"
    # A tombstone on another partition does not remove the entry this one holds.
    table.restored(3, b"a", None)
    assert dict(table) == {b"a": b"2"}
