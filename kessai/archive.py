"""The audit archive's file format (issue 10), shared by the archiver that writes it, `kessai
replay --archive` and `kessai audit` that read it.

An SQLite file (WAL): ``records`` holds one row per archived record — topic, partition,
offset, timestamp, key, headers (msgpack list of [name, value]), the raw value — with its hash
chain link (``prev_hash``, ``hash``; see ``agents/archiver/chain.py``); ``checkpoints`` the
archiver's signed chain heads; ``meta`` the archive's id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgpack

from kessai.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    offset       INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    key          BLOB,
    headers      BLOB    NOT NULL,
    value        BLOB,
    prev_hash    BLOB    NOT NULL,
    hash         BLOB    NOT NULL,
    PRIMARY KEY (topic, partition, offset)
);
CREATE INDEX IF NOT EXISTS records_by_time ON records (timestamp_ms);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq        INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    envelope   BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

Record = tuple[str, int, int, int, "bytes | None", list[tuple[str, bytes]], "bytes | None"]


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open an archive for reading; a missing or foreign file is a ConfigError."""
    if not Path(path).is_file():
        raise ConfigError(f"no archive at {path} (pass --archive FILE or set KESSAI_ARCHIVE; "
                          "`kessai up` writes one per run)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.execute("SELECT 1 FROM records LIMIT 1")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ConfigError(f"{path} is not a kessai archive ({exc})") from None
    return db


def unpack_headers(raw: bytes) -> list[tuple[str, bytes]]:
    try:
        return [(str(k), bytes(v or b"")) for k, v in msgpack.unpackb(raw, raw=False)]
    except Exception:
        return []  # a damaged header list: the audit's chain check names the row


def scan(path: Path, topics: Sequence[str], since_ms: int | None = None,
         until_ms: int | None = None) -> Iterator[Record]:
    """The archived records of ``topics`` (all when empty) in a time range, by scanning the
    archive's time index (no broker time index involved), each partition in offset order."""
    db = connect_read_only(path)
    where, args = [], []  # type: ignore[var-annotated]
    if topics:
        where.append(f"topic IN ({', '.join('?' for _ in topics)})")
        args += list(topics)
    if since_ms is not None:
        where.append("timestamp_ms >= ?")
        args.append(since_ms)
    if until_ms is not None:
        where.append("timestamp_ms <= ?")
        args.append(until_ms)
    sql = ("SELECT topic, partition, offset, timestamp_ms, key, headers, value FROM records"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY topic, partition, offset")
    try:
        for topic, partition, offset, ts, key, headers, value in db.execute(sql, args):
            yield (topic, partition, offset, ts, None if key is None else bytes(key),
                   unpack_headers(bytes(headers)), None if value is None else bytes(value))
    finally:
        db.close()
