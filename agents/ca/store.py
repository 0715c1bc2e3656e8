"""The CA's issuance record (aiosqlite, DESIGN §4): per enrolment request, the certificate it
issued and exactly what it sent, so a redelivered registration is answered with the same
certificate instead of a second one.

What is kept is what went on the bus: the certificate, and the card and payment key sealed to
the wallet server (the CA cannot open those). No card number is stored.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import msgpack

from kessai import envelope
from kessai.errors import KessaiError
from schemas.codec import from_body
from schemas.relay import AuthenticationInformation, CAContents

_SCHEMA = """
CREATE TABLE IF NOT EXISTS issued (
    request_id  TEXT PRIMARY KEY,
    serial      TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL,
    wallet_id   TEXT NOT NULL,
    information BLOB NOT NULL,
    contents    TEXT NOT NULL,
    issued_ms   INTEGER NOT NULL
);
"""

Issued = tuple[AuthenticationInformation, CAContents]


class CAStore:
    """One SQLite file, opened on first use; ``close()`` at shutdown."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._closed = False
        self._lock = asyncio.Lock()

    async def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            if self._closed:
                raise KessaiError("the CA store is closed (worker shutting down)")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(str(self.path), isolation_level=None)
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                await db.execute("PRAGMA busy_timeout=5000")
                await db.executescript(_SCHEMA)
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

    async def _get(self, db: aiosqlite.Connection, request_id: str) -> Issued | None:
        async with db.execute("SELECT information, contents FROM issued WHERE request_id = ?",
                              (request_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        info = from_body(AuthenticationInformation, msgpack.unpackb(row[0], raw=False))
        return info, CAContents(request_id, row[1])

    async def get(self, request_id: str) -> Issued | None:
        async with self._lock:
            return await self._get(await self._conn(), request_id)

    async def record(self, info: AuthenticationInformation, contents: CAContents,
                     now_ms: int) -> Issued:
        """Keep the first issuance for the request; returns what is stored."""
        cert = info.certificate
        async with self._lock:
            db = await self._conn()
            await db.execute(
                "INSERT OR IGNORE INTO issued VALUES (?, ?, ?, ?, ?, ?, ?)",
                (info.request_id, cert.serial, cert.user_id, cert.wallet_id,
                 envelope.pack_body(info), contents.html, now_ms))
            stored = await self._get(db, info.request_id)
        assert stored is not None
        return stored
