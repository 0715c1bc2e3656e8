"""The durable records that are not partition state (DESIGN §4): one SQLite file per agent
process, opened on first use (so importing and constructing do no I/O), closed at shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar, Self

import aiosqlite

from kessai.errors import ConfigError, KessaiError

SYNCHRONOUS = ("FULL", "NORMAL")


def synchronous_pragma(mode: str) -> str:
    """The PRAGMA that sets SQLite's commit sync (``Settings.sqlite_synchronous``)."""
    if mode not in SYNCHRONOUS:
        raise ConfigError(f"SQLite synchronous must be one of {', '.join(SYNCHRONOUS)}, "
                          f"got {mode!r}")
    return f"PRAGMA synchronous={mode}"


class SqliteStore:
    """Base for the agents' aiosqlite stores.

    One connection serves every coroutine of the worker; SQLite transactions belong to the
    connection, so statements that belong together run under ``self._lock``.
    """

    SCHEMA: ClassVar[str] = ""
    NAME: ClassVar[str] = "store"

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._sync = synchronous_pragma(synchronous)
        self._db: aiosqlite.Connection | None = None
        self._closed = False
        self._lock = asyncio.Lock()

    async def _on_open(self, db: aiosqlite.Connection) -> None:
        """Called once after the schema exists (subclasses seed here)."""

    async def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            if self._closed:
                raise KessaiError(f"the {self.NAME} is closed (worker shutting down)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(str(self.path), isolation_level=None)
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute(self._sync)
                await db.execute("PRAGMA busy_timeout=5000")
                await db.executescript(self.SCHEMA)
                await self._on_open(db)
            except BaseException:
                await db.close()
                raise
            self._db = db
        return self._db

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            if self._db is not None:
                await self._db.close()
                self._db = None


class SqliteDB:
    """Base for stores that commit explicitly (implicit transactions, ``commit()`` per write).

    Open with ``await db.open()`` or ``async with``; a closed store opens again on next use.
    Several workers may share a data directory: WAL and a busy timeout let them take turns
    instead of failing on a locked file.
    """

    SCHEMA: ClassVar[str] = ""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._sync = synchronous_pragma(synchronous)
        self._conn: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()

    async def open(self) -> Self:
        async with self._opening:
            if self._conn is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = await aiosqlite.connect(self.path)
                await conn.execute("PRAGMA journal_mode=WAL")
                await conn.execute(self._sync)
                await conn.execute("PRAGMA busy_timeout=5000")
                await conn.executescript(self.SCHEMA)
                await conn.commit()
                self._conn = conn
        return self

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            await self.open()
        assert self._conn is not None
        return self._conn

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
