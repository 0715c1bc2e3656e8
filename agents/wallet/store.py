"""The wallet server's durable records (aiosqlite, DESIGN §4): personal wallets and sessions.

- ``users``: one row per (wallet, user) with the salted password hash (no password).
- ``cards``: the personal wallet 61 ([d:159, 174]): per (wallet, user, brand) the card, the
  user's payment-signing key and the CA's certificate for it. Seeded from the wallet's key file
  (certificates the CA issued in advance) and extended by enrolment (claim 12).
- ``sessions``: one per (wallet, txn id): the cookie, the shop's payment information as
  received, the state (see ``sessions``) and, once sent, the payment request.

Card numbers and keys stay in this file (the wallet's own domain); they are never logged and
are left out of the dataclasses' ``repr``. Every write is idempotent or a compare-and-set on
the session's state, so a redelivered message never moves a session twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import msgpack

from agents.wallet.sessions import Session
from kessai.stores import SqliteStore
from schemas.codec import from_body, to_body
from schemas.relay import Certificate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    wallet_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    password_salt BLOB,
    password_hash BLOB,
    PRIMARY KEY (wallet_id, user_id)
);
CREATE TABLE IF NOT EXISTS cards (
    wallet_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    brand       TEXT NOT NULL,
    pan         TEXT NOT NULL,
    expiry      TEXT NOT NULL,
    signing_key BLOB NOT NULL,
    certificate BLOB NOT NULL,
    PRIMARY KEY (wallet_id, user_id, brand)
);
CREATE TABLE IF NOT EXISTS sessions (
    wallet_id           TEXT NOT NULL,
    txn_id              TEXT NOT NULL,
    cookie              TEXT NOT NULL,
    shop_id             TEXT NOT NULL,
    payment_information BLOB NOT NULL,
    state               TEXT NOT NULL,
    user_id             TEXT NOT NULL DEFAULT '',
    brand               TEXT NOT NULL DEFAULT '',
    method              TEXT NOT NULL DEFAULT '',
    failures            INTEGER NOT NULL DEFAULT 0,
    request             BLOB NOT NULL DEFAULT x'',
    approval_msg_id     TEXT NOT NULL DEFAULT '',
    result_kind         TEXT NOT NULL DEFAULT '',
    result_html         TEXT NOT NULL DEFAULT '',
    created_ms          INTEGER NOT NULL,
    PRIMARY KEY (wallet_id, txn_id)
);
"""
_SESSION_COLUMNS = [f.name for f in dataclasses.fields(Session)]


@dataclass(frozen=True)
class User:
    wallet_id: str
    user_id: str
    password_salt: bytes | None = field(default=None, repr=False)
    password_hash: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Card:
    """One card in a personal wallet, with the key and certificate that pay with it."""

    wallet_id: str
    user_id: str
    brand: str
    pan: str = field(repr=False)
    expiry: str = field(repr=False)
    signing_key: bytes = field(repr=False)
    certificate: Certificate = field(repr=False)


def certificate_from_record(record: Mapping[str, Any]) -> Certificate:
    """A certificate from the key file's form (its bytes fields hex-encoded, as written by
    sim/devkeys.py)."""
    binary = {f.name for f in dataclasses.fields(Certificate) if f.type in (bytes, "bytes")}
    return from_body(Certificate, {k: bytes.fromhex(v) if k in binary else v
                                   for k, v in record.items()})


def seed_from_secrets(wallet_id: str, users: Mapping[str, Mapping[str, Any]]
                      ) -> list[tuple[User, Card]]:
    """The personal wallets the development key set gives ``wallet_id`` (keys._init_wallets)."""
    out = []
    for user_id, r in users.items():
        out.append((
            User(wallet_id, user_id, bytes.fromhex(r["password_salt"]),
                 bytes.fromhex(r["password_hash"])),
            Card(wallet_id, user_id, str(r["brand"]), str(r["pan"]), str(r["expiry"]),
                 bytes.fromhex(r["signing"]), certificate_from_record(r["certificate"]))))
    return out


def _pack_cert(cert: Certificate) -> bytes:
    return msgpack.packb(to_body(cert), use_bin_type=True)


def _unpack_cert(raw: bytes) -> Certificate:
    return from_body(Certificate, msgpack.unpackb(raw, raw=False))


class WalletStore(SqliteStore):
    """One SQLite file, opened (and seeded) on first use; ``close()`` at shutdown."""

    SCHEMA = _SCHEMA
    NAME = "wallet store"

    def __init__(self, path: Path, seed: Iterable[tuple[User, Card]] = (), *,
                 synchronous: str = "FULL") -> None:
        super().__init__(path, synchronous=synchronous)
        self._seed = list(seed)

    async def _on_open(self, db: aiosqlite.Connection) -> None:
        # Seeding keeps what is there: enrolments and sessions survive a restart.
        for user, card in self._seed:
            await self._insert_user(db, user)
            await self._put_card(db, card, replace=False)

    # -- personal wallets --------------------------------------------------------------
    @staticmethod
    async def _insert_user(db: aiosqlite.Connection, user: User) -> None:
        await db.execute("INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?)",
                         (user.wallet_id, user.user_id, user.password_salt, user.password_hash))

    @staticmethod
    async def _put_card(db: aiosqlite.Connection, card: Card, *, replace: bool) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        await db.execute(f"{verb} INTO cards VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (card.wallet_id, card.user_id, card.brand, card.pan, card.expiry,
                          card.signing_key, _pack_cert(card.certificate)))

    async def user(self, wallet_id: str, user_id: str) -> User | None:
        async with self._lock:
            db = await self._conn()
            async with db.execute(
                    "SELECT password_salt, password_hash FROM users "
                    "WHERE wallet_id = ? AND user_id = ?", (wallet_id, user_id)) as cur:
                row = await cur.fetchone()
        return User(wallet_id, user_id, row[0], row[1]) if row is not None else None

    async def cards(self, wallet_id: str, user_id: str) -> list[Card]:
        async with self._lock:
            db = await self._conn()
            async with db.execute(
                    "SELECT brand, pan, expiry, signing_key, certificate FROM cards "
                    "WHERE wallet_id = ? AND user_id = ? ORDER BY brand",
                    (wallet_id, user_id)) as cur:
                rows = await cur.fetchall()
        return [Card(wallet_id, user_id, r[0], r[1], r[2], r[3], _unpack_cert(r[4]))
                for r in rows]

    async def enrol(self, user: User, card: Card) -> bool:
        """Store a card the CA certified (claim 12). A new user is created with ``user``'s
        password hash; an existing user keeps theirs. A card of the same brand is replaced
        (certificate renewal). True if the user is new."""
        async with self._lock:
            db = await self._conn()
            await db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                await self._insert_user(db, user)
                new_user = db.total_changes > before
                await self._put_card(db, card, replace=True)
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise
        return new_user

    # -- sessions ------------------------------------------------------------------------
    async def open_session(self, session: Session, now_ms: int) -> Session:
        """Create ``session`` unless the txn already has one; returns the stored session."""
        async with self._lock:
            db = await self._conn()
            await db.execute(
                "INSERT OR IGNORE INTO sessions (wallet_id, txn_id, cookie, shop_id, "
                "payment_information, state, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session.wallet_id, session.txn_id, session.cookie, session.shop_id,
                 session.payment_information, session.state, now_ms))
            stored = await self._session(db, session.wallet_id, session.txn_id)
        assert stored is not None
        return stored

    async def session(self, wallet_id: str, txn_id: str) -> Session | None:
        async with self._lock:
            return await self._session(await self._conn(), wallet_id, txn_id)

    @staticmethod
    async def _session(db: aiosqlite.Connection, wallet_id: str, txn_id: str
                       ) -> Session | None:
        async with db.execute(
                f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions "
                "WHERE wallet_id = ? AND txn_id = ?", (wallet_id, txn_id)) as cur:
            row = await cur.fetchone()
        return Session(*row) if row is not None else None

    async def advance(self, session: Session, **changes: Any) -> Session | None:
        """Compare-and-set: apply ``changes`` only if the stored state is still
        ``session.state``. Returns the updated session, or None if another step won."""
        if not changes or not set(changes) <= set(_SESSION_COLUMNS) - {"wallet_id", "txn_id"}:
            raise ValueError(f"cannot change session fields {sorted(changes)}")
        assignments = ", ".join(f"{name} = ?" for name in changes)
        async with self._lock:
            db = await self._conn()
            cur = await db.execute(
                f"UPDATE sessions SET {assignments} "
                "WHERE wallet_id = ? AND txn_id = ? AND state = ?",
                (*changes.values(), session.wallet_id, session.txn_id, session.state))
            if cur.rowcount != 1:
                return None
            return await self._session(db, session.wallet_id, session.txn_id)
