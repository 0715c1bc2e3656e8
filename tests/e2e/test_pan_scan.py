"""(16) No card number on any topic the shop may read, nor in any worker's log (spec R20)."""

from __future__ import annotations

import pytest

from audit.cards import card_numbers_in
from sim import devdata
from tests.e2e.bus import purchase, read_all, run
from tests.e2e.conftest import System
from topics.catalogue import CATALOGUE

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

ALL_PANS = [c.pan for u in devdata.USERS for c in u.cards] + \
    [c.pan for c in devdata.EXTRA_ACCOUNTS]


def pans_in(data: bytes) -> set[str]:
    """The scanner `kessai audit verify` uses (audit/cards.py), with every dev card number."""
    return card_numbers_in(data, ALL_PANS)


def test_the_scanner_finds_a_card_number_when_there_is_one() -> None:
    assert pans_in(b"x 4111111111111111 y") == {"4111111111111111"}
    assert pans_in(b"order 1234567890 total 1155") == set()
    assert pans_in(b"id 9470740635774477a5fd8664aa990bb0") == set()  # a hex message id
    assert pans_in(b"drift of +0.0076069360002293 runtime=0.41763650800021423") == set()
    assert pans_in(b"\xb04012888888881881\xa3") == {"4012888888881881"}  # msgpack str


async def test_no_card_number_on_shop_readable_topics_or_in_logs(system: System) -> None:
    # Every user and card kind crosses the bus first, including a held account.
    await run(system.settings, *(purchase(u.user_id, [["XXXX", 1]]) for u in devdata.USERS),
              purchase("alice", [["XXXX", 1]], card="expired"))
    shop_readable = [t.name for t in CATALOGUE if "shop" in t.readers]
    assert "kessai.payment-results" in shop_readable
    assert "kessai.settlement.second" not in shop_readable
    for topic in shop_readable:
        for r in await read_all(system.settings, topic):
            assert not pans_in((r.key or b"") + (r.value or b"")), f"card number on {topic}"
    # The sealed topics hold no card number in the clear either.
    for topic in ("kessai.settlement.second", "kessai.authorizations"):
        records = await read_all(system.settings, topic)
        assert records and not any(pans_in(r.value or b"") for r in records), topic
    for agent, text in system.logs().items():
        assert not pans_in(text.encode()), f"card number in the {agent} log"
