"""Canonical order content and its one-way hash (seed 003 [0025], spec R13/R14).

Shop and settlement server must hash the same bytes: items sorted by product code, text trimmed
and NFKC-normalised, amounts as integers of minor units, the currency explicit.
"""

from __future__ import annotations

import hashlib
import unicodedata

import msgpack

from schemas.v1 import LineItem, OrderContent

HASH_DOMAIN = b"kessai/order-content/v1\x00"


def _text(s: str) -> str:
    return unicodedata.normalize("NFKC", s).strip()


def canonical_items(items: list[LineItem]) -> list[list[object]]:
    return sorted([_text(i.code), _text(i.name), i.unit_price, i.quantity] for i in items)


def canonical_bytes(content: OrderContent) -> bytes:
    return msgpack.packb(
        [_text(content.currency).upper(), canonical_items(content.items), content.tax,
         content.total],
        use_bin_type=True)


def content_hash(content: OrderContent) -> bytes:
    """SHA-256 over the canonical serialisation."""
    return hashlib.sha256(HASH_DOMAIN + canonical_bytes(content)).digest()
