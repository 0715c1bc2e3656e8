"""Collation (照合, seed 003 A17, [0036], cl. 3): the pure comparison of the two requests.

Settlement goes ahead only if the kind of goods, the quantities and the amounts agree. Line
items compare as a multiset after canonicalisation (spec R13); a 1st request that carries only
the hash of the content is compared by hashing the 2nd request's content the same way (R14).
"""

from __future__ import annotations

from dataclasses import dataclass

from kessai.canonical import canonical_items, content_hash
from schemas.v1 import FirstRequest, SecondRequest


@dataclass(frozen=True)
class Collation:
    match: bool
    differences: tuple[str, ...] = ()


def collate(first: FirstRequest, second: SecondRequest) -> Collation:
    """Compare the shop's and the user's requests for one order. Pure; no side effects.

    The differences name fields only, never values, so they can go to the audit topic without
    revealing one party's submission to the other (R17).
    """
    diffs: list[str] = []
    if (first.shop_id, first.order_id) != (second.shop_id, second.order_id):
        diffs.append("order_id")
    if first.amount != second.amount:
        diffs.append("amount")
    if second.amount != second.content.amount:
        diffs.append("second.amount_vs_total")
    if first.content is not None:
        a, b = first.content, second.content
        if a.currency != b.currency:
            diffs.append("currency")
        if canonical_items(a.items) != canonical_items(b.items):
            diffs.append("items")
        if a.tax != b.tax:
            diffs.append("tax")
        if a.total != b.total:
            diffs.append("total")
        if first.amount != a.amount:
            diffs.append("first.amount_vs_total")
    elif first.content_hash is not None:
        if content_hash(second.content) != first.content_hash:
            diffs.append("content_hash")
    else:
        diffs.append("first.content_missing")
    return Collation(not diffs, tuple(diffs))
