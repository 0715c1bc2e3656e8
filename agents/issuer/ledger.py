"""The FI host's durable ledger: accounts and one decision per order (aiosqlite, DESIGN §4).

Spec R23: the FI side dedupes on ``idempotency_key = join_key``. The settlement server re-asks
after a timeout and Kafka redelivers after a crash, so the same order can arrive many times;
``authorize`` charges at most once per join key and answers every repeat with the decision it
stored the first time (approved or declined).

Accounts are looked up by ``pan_hash`` (SHA-256 hex of the card number). The card number is
kept only in the ``accounts`` table (the issuer's own domain) and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from types import TracebackType

import aiosqlite

from agents.issuer import rules
from agents.issuer.rules import Account, Decision
from kessai.batch import defer_commit
from kessai.errors import KessaiError
from kessai.money import Money
from kessai.stores import synchronous_pragma

log = logging.getLogger("kessai.issuer")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    pan_hash    TEXT PRIMARY KEY,
    pan         TEXT NOT NULL,
    expiry      TEXT NOT NULL,
    limit_minor INTEGER NOT NULL,
    currency    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    join_key     TEXT PRIMARY KEY,
    approved     INTEGER NOT NULL CHECK (approved IN (0, 1)),
    reason       TEXT NOT NULL,
    auth_code    TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    pan_hash     TEXT,
    decided_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_pan ON decisions (pan_hash, approved);
"""


def pan_hash(pan: str) -> str:
    return hashlib.sha256(pan.encode()).hexdigest()


class Ledger:
    """One SQLite file. Use ``await Ledger.open(path)`` (or ``async with``), then ``close()``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # One connection is shared by every coroutine of the worker, and SQLite transactions
        # belong to the connection: without this lock two handlers would interleave inside
        # one transaction. BEGIN IMMEDIATE covers other processes on the same file.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str, *, synchronous: str = "FULL") -> Ledger:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a read-decide-write is
        # exactly one transaction and Python's sqlite3 never opens one behind our back.
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            # FULL: a charge survives the host's power loss (Settings.sqlite_synchronous).
            await db.execute(synchronous_pragma(synchronous))
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(_SCHEMA)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        # A batch's decisions not yet committed are kept (stored before being announced).
        await self._commit_batch()
        await self._db.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One write transaction: commit on success, roll back on any error or cancel.

        Inside a handler batch (:mod:`kessai.batch`) it is a savepoint of the batch's one
        transaction instead, committed when the batch flushes — before the results the batch
        emitted leave and before its offsets are committed, so a charge is stored before it is
        announced, as with one commit per authorization.
        """
        async with self._lock:
            if defer_commit(self, self._commit_batch):
                async with self._savepoint():
                    yield
                return
            if self._db.in_transaction:  # a batch's writes, stored early: harmless
                await self._db.execute("COMMIT")
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                await self._db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT leaves the transaction open; close it so the next one starts.
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise

    @contextlib.asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[None]:
        """One authorization inside the batch's transaction (opened on its first write);
        an error undoes only this authorization."""
        if not self._db.in_transaction:
            await self._db.execute("BEGIN IMMEDIATE")
        await self._db.execute("SAVEPOINT authorization")
        try:
            yield
            await self._db.execute("RELEASE authorization")
        except BaseException:
            if self._db.in_transaction:
                await self._db.execute("ROLLBACK TO authorization")
                await self._db.execute("RELEASE authorization")
            raise

    async def _commit_batch(self) -> None:
        async with self._lock:
            if self._db.in_transaction:
                await self._db.execute("COMMIT")

    async def seed(self, accounts: Iterable[Account]) -> int:
        """Insert accounts not yet known; existing ones (and their history) are kept as is.

        Returns how many were new.
        """
        rows = [(pan_hash(a.pan), a.pan, a.expiry, a.limit_minor, a.currency) for a in accounts]
        async with self._transaction():
            before = self._db.total_changes
            await self._db.executemany(
                "INSERT OR IGNORE INTO accounts VALUES (?, ?, ?, ?, ?)", rows)
            added = self._db.total_changes - before
        return added

    async def authorize(self, join_key: str, pan: str | None, expiry: str | None,
                        amount: Money, now_ms: int) -> Decision:
        """Decide once per ``join_key`` and store it; a repeat gets the stored decision.

        ``pan``/``expiry`` are None when the sealed account info could not be opened (the
        order is then declined as unreadable, and stays so).
        """
        async with self._transaction():
            return await self._authorize_in_tx(join_key, pan, expiry, amount, now_ms)

    async def _authorize_in_tx(self, join_key: str, pan: str | None, expiry: str | None,
                               amount: Money, now_ms: int) -> Decision:
        stored = await self._stored(join_key)
        if stored is not None:
            decision, stored_amount = stored
            if stored_amount != amount:
                log.warning("issuer: %s asked again for %s, answering the decision made for %s",
                            join_key, amount, stored_amount)
            return decision
        digest = pan_hash(pan) if pan is not None else None
        account = await self._account(digest) if digest is not None else None
        used = await self._used(digest) if account is not None else 0
        decision = rules.decide(account, pan, expiry, amount, used, now_ms, join_key=join_key)
        # The primary key on join_key is the last line of defence: a second insert for the
        # same order fails the transaction instead of recording a second charge.
        await self._db.execute(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (join_key, int(decision.approved), decision.reason, decision.auth_code,
             amount.minor, amount.currency, digest, now_ms))
        return decision

    async def _stored(self, join_key: str) -> tuple[Decision, Money] | None:
        rows = list(await self._db.execute_fetchall(
            "SELECT approved, reason, auth_code, amount_minor, currency FROM decisions "
            "WHERE join_key = ?", (join_key,)))
        row = rows[0] if rows else None
        if row is None:
            return None
        return Decision(bool(row[0]), row[1], row[2]), Money(row[3], row[4])

    async def _account(self, digest: str) -> Account | None:
        rows = list(await self._db.execute_fetchall(
            "SELECT pan, expiry, limit_minor, currency FROM accounts WHERE pan_hash = ?",
            (digest,)))
        row = rows[0] if rows else None
        return Account(row[0], row[1], row[2], row[3]) if row is not None else None

    async def _used(self, digest: str) -> int:
        rows = list(await self._db.execute_fetchall(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM decisions "
            "WHERE pan_hash = ? AND approved = 1", (digest,)))
        row = rows[0] if rows else None
        return int(row[0]) if row is not None else 0

    async def balance(self, pan: str) -> Money | None:
        """The available limit (limit minus approved charges), or None for an unknown card."""
        digest = pan_hash(pan)
        async with self._lock:
            account = await self._account(digest)
            if account is None:
                return None
            used = await self._used(digest)
        return Money(account.limit_minor - used, account.currency)

    async def charges_for(self, join_key: str) -> int:
        """How many approved charges the ledger holds for one order (0 or 1 when correct)."""
        async with self._lock, self._db.execute(
                "SELECT COUNT(*) FROM decisions WHERE join_key = ? AND approved = 1",
                (join_key,)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row is not None else 0


class LazyLedger:
    """Opens (and seeds) the ledger on first use, once, however many callers race for it.

    The worker may deliver a record before any startup hook has run, so the agent asks this
    handle instead of relying on start order.
    """

    def __init__(self, path: Path, accounts: Iterable[Account], *,
                 synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._accounts = list(accounts)
        self._sync = synchronous
        self._ledger: Ledger | None = None
        self._closed = False
        self._lock = asyncio.Lock()

    async def get(self) -> Ledger:
        ledger = self._ledger
        if ledger is not None:
            return ledger
        async with self._lock:
            # Reopening after shutdown would leave a connection thread nobody closes.
            if self._closed:
                raise KessaiError("the issuer ledger is closed (worker shutting down)")
            if self._ledger is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                opened = await Ledger.open(self.path, synchronous=self._sync)
                try:
                    added = await opened.seed(self._accounts)
                except BaseException:
                    await opened.close()
                    raise
                log.info("issuer ledger %s open, %d new account(s)", self.path, added)
                self._ledger = opened
            return self._ledger

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            if self._ledger is not None:
                await self._ledger.close()
                self._ledger = None
