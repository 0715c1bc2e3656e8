"""The CA's issuance record (aiosqlite, DESIGN §4): per enrolment request, the certificate it
issued and exactly what it sent, so a redelivered registration is answered with the same
certificate instead of a second one.

What is kept is what went on the bus: the certificate, and the card and payment key sealed to
the wallet server (the CA cannot open those). No card number is stored.
"""

from __future__ import annotations

import aiosqlite
import msgpack

from kessai import envelope
from kessai.stores import SqliteStore
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


class CAStore(SqliteStore):
    """One SQLite file, opened on first use; ``close()`` at shutdown."""

    SCHEMA = _SCHEMA
    NAME = "CA store"

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
