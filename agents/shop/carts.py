"""The shop's carts (seeds 000/001 ①, [d:184]): products the user selects provisionally while
browsing the shop's HTTP front, held "sequentially" until the final-payment button.

aiosqlite, a ``carts`` table next to the order DB. A cart id is unguessable (it travels in the
URLs of terminals without cookies), and a cart belongs to one shop.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgpack

from kessai.stores import SqliteDB

MAX_LINES = 20
MAX_QUANTITY = 99

_SCHEMA = """
CREATE TABLE IF NOT EXISTS carts (
    shop_id    TEXT NOT NULL,
    cart_id    TEXT NOT NULL,
    items      BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (shop_id, cart_id)
);
"""


def new_cart_id() -> str:
    return "cart-" + secrets.token_urlsafe(12)


def added(items: list[list[Any]], code: str, quantity: int) -> list[list[Any]]:
    """``items`` with ``quantity`` more of ``code`` (one line per product, order kept).

    Raises:
        ValueError: the quantity is out of range or the cart would hold too many lines.
    """
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValueError(f"quantity must be 1 to {MAX_QUANTITY}")
    out = [list(line) for line in items]
    for line in out:
        if line[0] == code:
            if line[1] + quantity > MAX_QUANTITY:
                raise ValueError(f"at most {MAX_QUANTITY} of one product")
            line[1] += quantity
            return out
    if len(out) >= MAX_LINES:
        raise ValueError(f"at most {MAX_LINES} products in one cart")
    return [*out, [code, quantity]]


class CartDB(SqliteDB):
    """Carts by (shop, cart id). Open with ``await db.open()``; close with ``close()``."""

    SCHEMA = _SCHEMA

    async def get(self, shop_id: str, cart_id: str) -> list[list[Any]] | None:
        """The cart's ``[[product code, quantity], ...]``, or None if the shop has no such cart."""
        db = await self._db()
        async with db.execute("SELECT items FROM carts WHERE shop_id = ? AND cart_id = ?",
                              (shop_id, cart_id)) as cur:
            row = await cur.fetchone()
        return None if row is None else list(msgpack.unpackb(row[0], raw=False))

    async def put(self, shop_id: str, cart_id: str, items: list[list[Any]],
                  now_ms: int) -> None:
        db = await self._db()
        await db.execute(
            "INSERT INTO carts (shop_id, cart_id, items, created_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (shop_id, cart_id) DO UPDATE SET items = excluded.items",
            (shop_id, cart_id, msgpack.packb(items, use_bin_type=True), now_ms))
        await db.commit()
