"""The archive file: SQLite (WAL) through aiosqlite, one transaction per batch of rows.

Tables: ``records`` (one row per archived record, its chain link and hash; primary key
topic, partition, offset, so an offset is stored once) and ``checkpoints`` (the signed
checkpoint envelopes, in the order the archiver made them). The format is :mod:`kessai.archive`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from agents.archiver.chain import Head, Row
from kessai.archive import SCHEMA


class ArchiveStore:
    """The archiver's handle on the archive file. Use :meth:`open` and :meth:`close`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path | str) -> ArchiveStore:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed batch survives a process crash (an OS crash may
        # lose the last batches, which the broker still holds: the archiver re-reads them).
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(SCHEMA)
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def archive_id(self, new_id: str) -> str:
        """The archive's id, made ``new_id`` the first time."""
        await self._db.execute("INSERT OR IGNORE INTO meta VALUES ('archive_id', ?)", (new_id,))
        async with self._db.execute("SELECT value FROM meta WHERE name = 'archive_id'") as cur:
            row = await cur.fetchone()
        assert row is not None
        return str(row[0])

    async def heads(self) -> dict[tuple[str, int], Head]:
        """The head of every partition's chain (the row with the highest offset)."""
        sql = """SELECT r.topic, r.partition, r.offset, r.hash, c.n FROM records r
                 JOIN (SELECT topic, partition, MAX(offset) AS top, COUNT(*) AS n
                       FROM records GROUP BY topic, partition) c
                 ON r.topic = c.topic AND r.partition = c.partition AND r.offset = c.top"""
        async with self._db.execute(sql) as cur:
            return {(t, p): Head(o, bytes(h), n) for t, p, o, h, n in await cur.fetchall()}

    async def append(self, rows: Sequence[Row]) -> None:
        """Write a batch of rows in one transaction (all or none)."""
        if not rows:
            return
        await self._db.execute("BEGIN")
        try:
            await self._db.executemany(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.headers, r.value,
                  r.prev_hash, r.hash) for r in rows])
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise
        await self._db.execute("COMMIT")

    async def add_checkpoint(self, seq: int, created_ms: int, signed: bytes) -> None:
        await self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)",
                               (seq, created_ms, signed))

    async def last_checkpoint_seq(self) -> int:
        async with self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM checkpoints") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
