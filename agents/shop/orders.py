"""The shop's order DB (seed 003 [0024]): the orders it assigned, their content and status.

aiosqlite, one file per data directory. Every write is idempotent so redelivered messages are
harmless: adding an order that exists keeps the stored one, an order gets its server-assigned id
once, and a final status (PAID / NOT_PAID) is set once and never changed.

Status of an order: ``PENDING_ACK`` (settlement-assigned id not yet known, [0027]) →
``AWAITING_PAYMENT`` → ``PAID`` or ``NOT_PAID``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from agents.shop.results import FINAL
from kessai.money import Money
from kessai.stores import SqliteDB
from schemas.codec import from_body, to_body
from schemas.v1 import OrderContent

PENDING_ACK = "PENDING_ACK"
AWAITING_PAYMENT = "AWAITING_PAYMENT"

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
    PRIMARY KEY (shop_id, request_ref)
);
CREATE UNIQUE INDEX IF NOT EXISTS orders_by_id ON orders (shop_id, order_id)
    WHERE order_id != '';
"""
_COLUMNS = ("shop_id, request_ref, order_id, session, user_id, result_mode, shop_assigned, "
            "source_id, content, amount_minor, currency, status, outcome, polls, next_poll_ms")


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
    next_poll_ms: int | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL


def _row_to_order(row: Any) -> Order:
    (shop_id, ref, order_id, session, user_id, mode, shop_assigned, source_id, content, minor,
     currency, status, outcome, polls, next_poll_ms) = row
    return Order(shop_id, ref, order_id, session, user_id, mode,
                 from_body(OrderContent, msgpack.unpackb(content, raw=False)),
                 Money(minor, currency), status, bool(shop_assigned), source_id, outcome, polls,
                 next_poll_ms)


class OrderDB(SqliteDB):
    """The order DB. Open it with ``await db.open()`` or ``async with OrderDB(path) as db``."""

    SCHEMA = _SCHEMA

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Order | None:
        db = await self._db()
        async with db.execute(f"SELECT {_COLUMNS} FROM orders {sql}", params) as cur:
            row = await cur.fetchone()
        return _row_to_order(row) if row is not None else None

    async def add(self, order: Order, now_ms: int) -> Order | None:
        """Store ``order`` unless its reference (or id) is taken; return the stored order.

        The caller tells a redelivery from a collision by ``source_id``. ``None`` means the
        order id is taken by an order with another reference: try another id.
        """
        db = await self._db()
        await db.execute(
            f"INSERT OR IGNORE INTO orders ({_COLUMNS}, created_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (order.shop_id, order.request_ref, order.order_id, order.session, order.user_id,
             order.result_mode, int(order.shop_assigned), order.source_id,
             msgpack.packb(to_body(order.content), use_bin_type=True), order.amount.minor,
             order.amount.currency, order.status, order.outcome, order.polls,
             order.next_poll_ms, now_ms))
        await db.commit()
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
        await db.commit()
        return await self.by_ref(shop_id, request_ref)

    async def finalise(self, shop_id: str, order_id: str, status: str, outcome: str) -> bool:
        """Record a final status once. True if this call set it, False if it was already final.

        A duplicate or late result therefore never changes a PAID order, nor re-announces it.
        """
        if status not in FINAL:
            raise ValueError(f"{status!r} is not a final order status")
        db = await self._db()
        cur = await db.execute(
            "UPDATE orders SET status = ?, outcome = ?, next_poll_ms = NULL "
            "WHERE shop_id = ? AND order_id = ? AND status = ?",
            (status, outcome, shop_id, order_id, AWAITING_PAYMENT))
        changed = cur.rowcount == 1
        await cur.close()
        await db.commit()
        return changed

    async def claim_polls(self, now_ms: int, delay_ms: int, limit: int) -> list[Order]:
        """Take the orders whose result inquiry is due and schedule their next one.

        One UPDATE … RETURNING, so with several workers on one file each due inquiry is
        claimed by exactly one of them. After ``limit`` inquiries an order is no longer polled.
        """
        db = await self._db()
        async with db.execute(
            "UPDATE orders SET polls = polls + 1, "
            "next_poll_ms = CASE WHEN polls + 1 >= ? THEN NULL ELSE ? END "
            "WHERE status = ? AND next_poll_ms IS NOT NULL AND next_poll_ms <= ? "
            f"RETURNING {_COLUMNS}",
            (limit, now_ms + delay_ms, AWAITING_PAYMENT, now_ms)) as cur:
            rows = await cur.fetchall()
        await db.commit()
        return [_row_to_order(r) for r in rows]
