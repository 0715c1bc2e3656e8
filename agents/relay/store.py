"""The relay's session state (aiosqlite, ``data_dir/relay.sqlite``).

One row per terminal session: its flow and stage, the terminal profile, the transaction it
pays, the wallet server chosen and that wallet's session cookie (FIG. 6: the terminal never
sees it, R28), the message held for a later step (the shop's payment information until the
wallet is chosen, R34; the shop's payment request in the two-sided flow) and the latest
converted pages — which, once the result arrived, are the held result a reconnecting terminal
gets (R31, R32).

Every stage change is a compare-and-set on the current stage, so two requests racing for the
same step (a double press, two relay workers) move the session once and send one message
(R33, R45). Passwords and card numbers are never stored here (R43).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kessai.stores import SqliteDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    sid          TEXT PRIMARY KEY,
    token        TEXT NOT NULL,
    flow         TEXT NOT NULL,
    profile      TEXT NOT NULL,
    stage        TEXT NOT NULL,
    version      INTEGER NOT NULL DEFAULT 0,
    txn_id       TEXT NOT NULL DEFAULT '',
    shop_id      TEXT NOT NULL DEFAULT '',
    cart_id      TEXT NOT NULL DEFAULT '',
    user_id      TEXT NOT NULL DEFAULT '',
    wallet_id    TEXT NOT NULL DEFAULT '',
    wallet_cookie TEXT NOT NULL DEFAULT '',
    usable       TEXT NOT NULL DEFAULT '[]',
    held         BLOB,
    pages        TEXT NOT NULL DEFAULT '[]',
    page_kind    TEXT NOT NULL DEFAULT '',
    extra        TEXT NOT NULL DEFAULT '{}',
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_txn ON sessions (txn_id) WHERE txn_id != '';
"""
_JSON = ("usable", "pages", "extra")


@dataclass(frozen=True)
class RelaySession:
    sid: str
    token: str  # the hidden string terminals carry (HMAC-protected, R29a)
    flow: str
    profile: str
    stage: str
    created_ms: int
    updated_ms: int = 0
    version: int = 0  # bumped on every change; HTTP waiters watch it
    txn_id: str = ""  # payment-procedure id (claim 7); enrolment request id; 2-sided join key
    shop_id: str = ""
    cart_id: str = ""
    user_id: str = ""
    wallet_id: str = ""
    wallet_cookie: str = ""  # the wallet's session id (FIG. 6 ①), never sent to a terminal
    usable: list[str] = field(default_factory=list)  # wallets the shop designated ([d:302])
    held: bytes | None = None  # a signed envelope kept for a later step
    pages: list[str] = field(default_factory=list)  # the latest converted pages
    page_kind: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_COLUMNS = tuple(f.name for f in dataclasses.fields(RelaySession))


def _row(row: Iterable[Any]) -> RelaySession:
    values = dict(zip(_COLUMNS, row, strict=True))
    for name in _JSON:
        values[name] = json.loads(values[name])
    return RelaySession(**values)


def _wire(name: str, value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if name in _JSON else value


class RelayDB(SqliteDB):
    """Relay sessions. Open with ``await db.open()``; close with ``close()``."""

    SCHEMA = _SCHEMA

    async def create(self, session: RelaySession) -> None:
        db = await self._db()
        await db.execute(
            f"INSERT INTO sessions ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
            tuple(_wire(n, getattr(session, n)) for n in _COLUMNS))
        await db.commit()

    async def _one(self, where: str, params: tuple[Any, ...]) -> RelaySession | None:
        db = await self._db()
        async with db.execute(f"SELECT {', '.join(_COLUMNS)} FROM sessions WHERE {where}",
                              params) as cur:
            row = await cur.fetchone()
        return None if row is None else _row(row)

    async def get(self, sid: str) -> RelaySession | None:
        return await self._one("sid = ?", (sid,))

    async def by_txn(self, txn_id: str) -> RelaySession | None:
        if not txn_id:
            return None
        return await self._one("txn_id = ? ORDER BY created_ms DESC LIMIT 1", (txn_id,))

    async def advance(self, sid: str, expect: str | Iterable[str], now_ms: int,
                      **changes: Any) -> RelaySession | None:
        """Apply ``changes`` if the session is in (one of) ``expect``; return the new session.

        None means another request or message moved the session first: do nothing.
        """
        stages = [expect] if isinstance(expect, str) else list(expect)
        unknown = set(changes) - set(_COLUMNS) - {"version", "updated_ms"}
        if unknown or "sid" in changes:
            raise ValueError(f"cannot change {sorted(unknown | ({'sid'} & set(changes)))}")
        sets = ", ".join(f"{n} = ?" for n in changes)
        db = await self._db()
        cur = await db.execute(
            f"UPDATE sessions SET {sets}{', ' if sets else ''}version = version + 1, "
            f"updated_ms = ? WHERE sid = ? AND stage IN ({', '.join('?' for _ in stages)})",
            (*(_wire(n, v) for n, v in changes.items()), now_ms, sid, *stages))
        changed = cur.rowcount == 1
        await cur.close()
        await db.commit()
        return await self.get(sid) if changed else None
