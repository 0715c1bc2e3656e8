"""Reading an archive file (format: :mod:`kessai.archive`) row by row, for the audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from agents.archiver.chain import Row
from kessai.archive import connect_read_only

_COLUMNS = "topic, partition, offset, timestamp_ms, key, headers, value, prev_hash, hash"


class ArchiveReader:
    """Read-only access to an archive file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = connect_read_only(self.path)

    def close(self) -> None:
        self.db.close()

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def rows_by_partition(self) -> Iterator[Row]:
        """Every row, partition by partition, in offset order (the chains' order)."""
        for r in self.db.execute(f"SELECT {_COLUMNS} FROM records "
                                 "ORDER BY topic, partition, offset"):
            yield _row(r)

    def rows_by_time(self, topics: tuple[str, ...] | None = None) -> Iterator[Row]:
        """Rows in timestamp order (offset order within a partition), of ``topics`` or all."""
        where = ""
        args: tuple[str, ...] = ()
        if topics is not None:
            where = f"WHERE topic IN ({', '.join('?' for _ in topics)})"
            args = topics
        for r in self.db.execute(f"SELECT {_COLUMNS} FROM records {where} "
                                 "ORDER BY timestamp_ms, topic, partition, offset", args):
            yield _row(r)

    def archive_id(self) -> str | None:
        """The id the archiver signs its checkpoints with (None: never set)."""
        row = self.db.execute("SELECT value FROM meta WHERE name = 'archive_id'").fetchone()
        return None if row is None else str(row[0])

    def checkpoints(self) -> list[tuple[int, bytes]]:
        return [(int(seq), bytes(raw)) for seq, raw in
                self.db.execute("SELECT seq, envelope FROM checkpoints ORDER BY seq")]


def _row(r: tuple) -> Row:  # type: ignore[type-arg]
    topic, partition, offset, ts, key, headers, value, prev, h = r
    return Row(topic, partition, offset, ts, None if key is None else bytes(key), bytes(headers),
               None if value is None else bytes(value), bytes(prev), bytes(h))


def newest_archive(data_dir: Path) -> Path:
    """The archive of the newest `kessai up` run under ``data_dir``, else its archive.sqlite."""
    runs = sorted((data_dir / "runs").glob("*/archive.sqlite")) if (data_dir / "runs").is_dir() \
        else []
    return runs[-1] if runs else data_dir / "archive.sqlite"
