"""The electronic receipt (seed 002 V4, [0113], [0120]): a user's rows of transaction table
154b rendered as HTML, as a pure function. The rows hold no card number (table 154b has none:
the card stays in table 154a), so the page has none to show.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from protocols.wakeup import METHOD_NAMES


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def render(user_id: str, rows: Sequence[dict[str, Any]],
           merchant_name: Callable[[str], str]) -> str:
    """An HTML fragment: one table row per transaction, newest first (escaped throughout)."""
    e = html.escape
    if not rows:
        return f'<p class="history-empty">No transactions for user {e(user_id)}.</p>'
    lines = []
    for r in sorted(rows, key=lambda r: (r["date_ms"], r["transaction_number"]), reverse=True):
        goods = ", ".join(f"{e(str(n))} ×{int(q)}" for n, q, _ in r["items"])
        outcome = str(r["outcome"]) + (f" ({r['reason']})" if r.get("reason") else "")
        method = METHOD_NAMES.get(r["method"], r["method"]) if r["method"] else "-"
        lines.append(
            f'<tr class="txn" data-txn="{e(r["transaction_number"])}">'
            f"<td>{e(_when(int(r['date_ms'])))}</td><td>{e(r['transaction_number'])}</td>"
            f"<td>{e(merchant_name(r['merchant_code']))} ({e(r['merchant_code'])})</td>"
            f"<td>{goods}</td><td>{int(r['total'])} {e(r['currency'])}</td>"
            f"<td>{e(method)}</td><td>{e(outcome)}</td></tr>")
    return (f'<table class="history" data-user="{e(user_id)}"><tr><th>Date</th>'
            "<th>Transaction</th><th>Merchant</th><th>Goods</th><th>Total</th><th>Method</th>"
            "<th>Outcome</th></tr>" + "".join(lines) + "</table>")
