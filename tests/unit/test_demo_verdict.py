"""`kessai demo` against a running system: a purchase the user never confirms ends EXPIRED only
after the settlement server's 2nd-request lifetime, so the demo names it pending (not a failure)
when that lifetime is longer than it waits, and only then."""

from __future__ import annotations

from schemas.v1 import PurchaseCommand
from sim.journey import Hop, Purchase, verdict

MIN = 60_000


def purchase(expect: str, *hops: Hop) -> Purchase:
    p = Purchase("p", PurchaseCommand("sess", "alice", "shop-1", [["TEA1", 1]]), expect)
    p.hops.extend(hops)
    return p


def hop(type_: str, body: dict[str, object]) -> Hop:
    return Hop(1, "kessai.x", 0, 0, type_, "settlement", "k", "k", True, body, "t")


def test_an_abandoned_purchase_on_a_long_lived_system_is_pending_not_a_failure() -> None:
    assert verdict(purchase("EXPIRED"), 15 * MIN, 45.0).startswith("pending: ")


def test_an_expiry_the_demo_could_have_seen_is_still_expected() -> None:
    assert verdict(purchase("EXPIRED"), 8_000, 45.0) == "UNEXPECTED"  # kessai up --demo
    expired = purchase("EXPIRED", hop("payment-result", {"outcome": "EXPIRED"}))
    assert verdict(expired, 8_000, 45.0) == "ok"


def test_a_sent_second_request_or_another_outcome_is_never_excused() -> None:
    sent = purchase("EXPIRED", hop("settlement-second", {}))
    assert verdict(sent, 15 * MIN, 45.0) == "UNEXPECTED"
    approved = purchase("EXPIRED", hop("payment-result", {"outcome": "APPROVED"}))
    assert verdict(approved, 15 * MIN, 45.0) == "UNEXPECTED"
    assert verdict(purchase("APPROVED"), 15 * MIN, 45.0) == "UNEXPECTED"  # no outcome at all
