"""The gateway's per-transaction records (aiosqlite, DESIGN §4).

One row per txn the gateway accepted: which request (digest of the wallet's signed body),
wallet, shop and amount, the join key of its authorization, and — once the settlement host
answered — the decision. A redelivered request finds its row: while the host has not answered
the same authorization (same join key) is asked again, which the issuer answers from its own
record (it never charges twice); once decided, the stored response is sent again.

No card number is stored here: the gateway opens the sealed card again from the request when
it needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kessai.money import Money
from kessai.stores import SqliteStore
from schemas.relay import ApprovalResponse

AUTHORIZING = "authorizing"
DECIDED = "decided"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS txns (
    txn_id         TEXT PRIMARY KEY,
    join_key       TEXT NOT NULL UNIQUE,
    request_digest BLOB NOT NULL,
    wallet_id      TEXT NOT NULL,
    shop_id        TEXT NOT NULL,
    amount_minor   INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    host           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('authorizing', 'decided')),
    approved       INTEGER NOT NULL DEFAULT 0,
    reason         TEXT NOT NULL DEFAULT '',
    auth_code      TEXT NOT NULL DEFAULT '',
    created_ms     INTEGER NOT NULL,
    decided_ms     INTEGER
);
"""
_COLUMNS = ("txn_id, join_key, request_digest, wallet_id, shop_id, amount_minor, currency, "
            "host, state, approved, reason, auth_code")


@dataclass(frozen=True)
class Txn:
    txn_id: str
    join_key: str
    request_digest: bytes
    wallet_id: str
    shop_id: str
    amount: Money
    host: str
    state: str = AUTHORIZING
    approved: bool = False
    reason: str = ""
    auth_code: str = ""

    @property
    def decided(self) -> bool:
        return self.state == DECIDED

    def response(self) -> ApprovalResponse:
        """⑫ for a decided txn."""
        return ApprovalResponse(self.txn_id, self.wallet_id, self.shop_id, self.approved,
                                self.reason, self.amount, self.auth_code)


class GatewayStore(SqliteStore):
    """One SQLite file, opened on first use; ``close()`` at shutdown."""

    SCHEMA = _SCHEMA
    NAME = "gateway store"

    async def _one(self, where: str, value: str) -> Txn | None:
        db = await self._conn()
        async with db.execute(f"SELECT {_COLUMNS} FROM txns WHERE {where} = ?",
                              (value,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        (txn_id, join_key, digest, wallet_id, shop_id, minor, currency, host, state,
         approved, reason, auth_code) = row
        return Txn(txn_id, join_key, digest, wallet_id, shop_id, Money(minor, currency), host,
                   state, bool(approved), reason, auth_code)

    async def get(self, txn_id: str) -> Txn | None:
        async with self._lock:
            return await self._one("txn_id", txn_id)

    async def by_join_key(self, join_key: str) -> Txn | None:
        async with self._lock:
            return await self._one("join_key", join_key)

    async def claim(self, txn: Txn, now_ms: int) -> Txn:
        """Record an accepted request unless the txn has one; returns the stored row."""
        async with self._lock:
            db = await self._conn()
            await db.execute(
                "INSERT OR IGNORE INTO txns (txn_id, join_key, request_digest, wallet_id, "
                "shop_id, amount_minor, currency, host, state, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (txn.txn_id, txn.join_key, txn.request_digest, txn.wallet_id, txn.shop_id,
                 txn.amount.minor, txn.amount.currency, txn.host, AUTHORIZING, now_ms))
            stored = await self._one("txn_id", txn.txn_id)
        assert stored is not None
        return stored

    async def decide(self, join_key: str, approved: bool, reason: str, auth_code: str,
                     now_ms: int) -> Txn | None:
        """Store the settlement host's answer once; returns the stored row (first answer)."""
        async with self._lock:
            db = await self._conn()
            await db.execute(
                "UPDATE txns SET state = ?, approved = ?, reason = ?, auth_code = ?, "
                "decided_ms = ? WHERE join_key = ? AND state = ?",
                (DECIDED, int(approved), reason, auth_code, now_ms, join_key, AUTHORIZING))
            return await self._one("join_key", join_key)
