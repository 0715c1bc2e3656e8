"""The shop's order DB (seed 003 [0024]): the orders it assigned, their content and status.

aiosqlite, one file per data directory. Every write is idempotent so redelivered messages are
harmless: adding an order that exists keeps the stored one, an order gets its server-assigned id
once, and a final status (PAID / NOT_PAID) is set once and never changed.

Status of an order: ``PENDING_ACK`` (settlement-assigned id not yet known, [0027]) →
``AWAITING_PAYMENT`` → ``PAID`` or ``NOT_PAID``.

Inside a handler, writes join the handler batch's transaction (:mod:`kessai.batch`): the
transaction is committed once per batch, before the records the batch's handlers emitted are
sent and before the runtime commits the offsets of the records that caused them, so after a
kill -9 the DB holds at least what the committed offsets say was handled. Outside a handler (a
timer, an HTTP request) every write commits at once.

One file per data directory, shared by every shop worker that runs there (WAL, busy timeout):
a result keyed by join key finds its order whichever worker's partition it arrives on, and a
due result inquiry is claimed by exactly one worker (a conditional UPDATE), so the worker that
claims it is the one that asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import aiosqlite
import msgpack

from agents.shop.inquiries import AWAITING_PAYMENT, Inquiry
from agents.shop.results import FINAL
from kessai.batch import defer_commit
from kessai.money import Money
from kessai.stores import SqliteDB
from schemas.codec import from_body, to_body
from schemas.v1 import OrderContent

PENDING_ACK = "PENDING_ACK"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    shop_id      TEXT NOT NULL,
    request_ref  TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    session      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    result_mode  TEXT NOT NULL,
    shop_assigned INTEGER NOT NULL,
    source_id    TEXT NOT NULL,
    content      BLOB NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL,
    outcome      TEXT NOT NULL DEFAULT '',
    polls        INTEGER NOT NULL DEFAULT 0,
    next_poll_ms INTEGER,
    created_ms   INTEGER NOT NULL,
    trace_id     TEXT NOT NULL DEFAULT '',
    final_by     TEXT NOT NULL DEFAULT '',
    wake_to      TEXT NOT NULL DEFAULT 'terminal',
    brands       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (shop_id, request_ref)
);
CREATE UNIQUE INDEX IF NOT EXISTS orders_by_id ON orders (shop_id, order_id)
    WHERE order_id != '';
CREATE INDEX IF NOT EXISTS orders_by_next_poll ON orders (next_poll_ms)
    WHERE next_poll_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_by_session ON orders (shop_id, session);
"""
# Columns added after the first release, for order DBs made before them.
_ADDED = (("trace_id", "TEXT NOT NULL DEFAULT ''"), ("final_by", "TEXT NOT NULL DEFAULT ''"),
          ("wake_to", "TEXT NOT NULL DEFAULT 'terminal'"), ("brands", "TEXT NOT NULL DEFAULT ''"))
_COLUMNS = ("shop_id, request_ref, order_id, session, user_id, result_mode, shop_assigned, "
            "source_id, content, amount_minor, currency, status, outcome, polls, next_poll_ms, "
            "created_ms, trace_id, wake_to, brands")


@dataclass(frozen=True)
class Order:
    shop_id: str
    request_ref: str  # the shop's own reference; equals order_id when the shop assigns ids
    order_id: str  # "" until the settlement server assigns it ([0027])
    session: str
    user_id: str
    result_mode: str
    content: OrderContent  # what the user is shown in the payment-processing request (M4)
    amount: Money  # what the 1st settlement request asks for
    status: str
    shop_assigned: bool = True  # False: the settlement server assigns the id ([0027])
    source_id: str = ""  # message id of the order request that created the order
    outcome: str = ""
    polls: int = 0
    next_poll_ms: int | None = None  # the next result inquiry (a durable deadline)
    created_ms: int = 0  # set by the DB when the order is added
    trace_id: str = ""  # the purchase's trace, for records the shop's timer sends
    wake_to: str = "terminal"  # the wake-up channel: who placed the order (issue 8 item 3)
    brands: str = ""  # the brands the user chose at checkout, comma-separated ("" = any)

    @property
    def final(self) -> bool:
        return self.status in FINAL


def placing_source(source_id: str, earlier: Order | None, user_id: str) -> str:
    """Which request an order request places: its own (``source_id``, its envelope id), or,
    when this user's session already has an order at this shop, that order's request.

    One session of one user is one order. A placer (terminal, relay, selector) that handles
    its own input again after a crash sends its order request again in a new envelope, with a
    new id; deduplicating by envelope id alone made that a second order, and a second
    wake-up, for one purchase.
    """
    if earlier is not None and earlier.user_id == user_id:
        return earlier.source_id
    return source_id


def _row_to_order(row: Any) -> Order:
    (shop_id, ref, order_id, session, user_id, mode, shop_assigned, source_id, content, minor,
     currency, status, outcome, polls, next_poll_ms, created_ms, trace_id, wake_to, brands) = row
    return Order(shop_id, ref, order_id, session, user_id, mode,
                 from_body(OrderContent, msgpack.unpackb(content, raw=False)),
                 Money(minor, currency), status, bool(shop_assigned), source_id, outcome, polls,
                 next_poll_ms, created_ms, trace_id, wake_to, brands)


class OrderDB(SqliteDB):
    """The order DB. Open it with ``await db.open()`` or ``async with OrderDB(path) as db``."""

    SCHEMA = _SCHEMA

    async def open(self) -> Self:
        await super().open()
        db = await self._db()
        async with db.execute("PRAGMA table_info(orders)") as cur:
            have = {row[1] for row in await cur.fetchall()}
        for name, decl in _ADDED:
            if name not in have:
                try:
                    await db.execute(f"ALTER TABLE orders ADD COLUMN {name} {decl}")
                except aiosqlite.OperationalError as exc:
                    if "duplicate column" not in str(exc):  # another worker added it
                        raise
        await db.commit()
        return self

    async def close(self) -> None:
        # Writes a batch has not committed yet are kept: they are stored before the records
        # that announce them would have been sent, as at a batch flush.
        if self._conn is not None and self._conn.in_transaction:
            await self._conn.commit()
        await super().close()

    async def _commit(self, db: aiosqlite.Connection) -> None:
        """Commit now, or with the running handler batch (one commit per batch)."""
        if not defer_commit(self, db.commit):
            await db.commit()

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Order | None:
        db = await self._db()
        # One round trip to the connection's thread (execute, fetch and close were three).
        rows = list(await db.execute_fetchall(f"SELECT {_COLUMNS} FROM orders {sql}", params))
        return _row_to_order(rows[0]) if rows else None

    async def add(self, order: Order, now_ms: int) -> Order | None:
        """Store ``order`` unless its reference (or id) is taken; return the stored order.

        The caller tells a redelivery from a collision by ``source_id``. ``None`` means the
        order id is taken by an order with another reference: try another id.
        """
        db = await self._db()
        await db.execute(
            f"INSERT OR IGNORE INTO orders ({_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (order.shop_id, order.request_ref, order.order_id, order.session, order.user_id,
             order.result_mode, int(order.shop_assigned), order.source_id,
             msgpack.packb(to_body(order.content), use_bin_type=True), order.amount.minor,
             order.amount.currency, order.status, order.outcome, order.polls,
             order.next_poll_ms, now_ms, order.trace_id, order.wake_to,
             order.brands))
        await self._commit(db)
        return await self.by_ref(order.shop_id, order.request_ref)

    async def by_ref(self, shop_id: str, request_ref: str) -> Order | None:
        return await self._one("WHERE shop_id = ? AND request_ref = ?", (shop_id, request_ref))

    async def by_session(self, shop_id: str, session: str) -> Order | None:
        """The order of a terminal session (for relay orders: the transaction id)."""
        return await self._one("WHERE shop_id = ? AND session = ?", (shop_id, session))

    async def get(self, shop_id: str, order_id: str) -> Order | None:
        if not order_id:
            return None
        return await self._one("WHERE shop_id = ? AND order_id = ?", (shop_id, order_id))

    async def assign(self, shop_id: str, request_ref: str, order_id: str,
                     next_poll_ms: int | None) -> Order | None:
        """Give a pending order the id the settlement server assigned (once); return it.

        A repeated acknowledgement leaves the order as it is; the caller compares ids.
        """
        db = await self._db()
        await db.execute(
            "UPDATE orders SET order_id = ?, status = ?, next_poll_ms = ? "
            "WHERE shop_id = ? AND request_ref = ? AND status = ?",
            (order_id, AWAITING_PAYMENT, next_poll_ms, shop_id, request_ref, PENDING_ACK))
        await self._commit(db)
        return await self.by_ref(shop_id, request_ref)

    async def finalise(self, shop_id: str, order_id: str, status: str, outcome: str,
                       by: str = "") -> bool:
        """Record a final status once. True if the caller should announce it.

        That is: this call set it, or the message ``by`` (its id) set it before — a redelivery
        of the record that made the order final, whose announcement a crash may have lost. A
        duplicate or late result (another message) never changes a final order, nor
        re-announces it.
        """
        if status not in FINAL:
            raise ValueError(f"{status!r} is not a final order status")
        db = await self._db()
        cur = await db.execute(
            "UPDATE orders SET status = ?, outcome = ?, next_poll_ms = NULL, final_by = ? "
            "WHERE shop_id = ? AND order_id = ? AND status = ?",
            (status, outcome, by, shop_id, order_id, AWAITING_PAYMENT))
        changed = cur.rowcount == 1
        await cur.close()
        await self._commit(db)
        if changed or not by:
            return changed
        async with db.execute(
                "SELECT 1 FROM orders WHERE shop_id = ? AND order_id = ? AND final_by = ? "
                "AND status = ?", (shop_id, order_id, by, status)) as cur:
            return await cur.fetchone() is not None

    async def due_inquiries(self, now_ms: int, limit: int = 500) -> list[Order]:
        """Orders awaiting payment whose result inquiry is due, earliest first."""
        db = await self._db()
        async with db.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE next_poll_ms IS NOT NULL "
                "AND next_poll_ms <= ? AND status = ? AND order_id != '' "
                "ORDER BY next_poll_ms LIMIT ?", (now_ms, AWAITING_PAYMENT, limit)) as cur:
            rows = await cur.fetchall()
        return [_row_to_order(r) for r in rows]

    async def claim_inquiries(self, planned: Sequence[Inquiry[Order]]) -> list[Inquiry[Order]]:
        """Take the planned inquiries: count each one and store the time of the next.

        An inquiry is claimed only if the order is still as it was read (awaiting payment,
        same inquiry count and due time), so with several workers on one file each due
        inquiry is claimed, and made, by exactly one of them.
        """
        if not planned:
            return []
        db = await self._db()
        claimed = []
        for p in planned:
            o = p.order
            cur = await db.execute(
                "UPDATE orders SET polls = polls + 1, next_poll_ms = ? "
                "WHERE shop_id = ? AND order_id = ? AND status = ? AND polls = ? "
                "AND next_poll_ms = ?",
                (p.next_poll_ms, o.shop_id, o.order_id, AWAITING_PAYMENT, o.polls,
                 o.next_poll_ms))
            if cur.rowcount == 1:
                claimed.append(Inquiry(replace(o, polls=o.polls + 1,
                                               next_poll_ms=p.next_poll_ms), p.next_poll_ms))
            await cur.close()
        await self._commit(db)
        return claimed
