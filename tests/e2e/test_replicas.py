"""Two settlement workers split the settlement partitions (`kessai up --replicas
settlement=2`, issue 6 item 4) and every order still settles exactly once.

The system is the bench's own (:func:`sim.system.start_own`: its own broker, keys and data,
the workers as `kessai up` runs them) with two settlement workers in one consumer group.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from kessai import envelope, keys
from kessai.authenticators import join_key
from kessai.errors import KessaiError
from kessai.settings import Settings
from schemas.v1 import PaymentResult
from sim.journey import drive
from sim.system import BENCH_AGENTS, System, start_own
from tests.e2e import bus

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.timeout(300)]

PURCHASES = 24
ASSIGNED = re.compile(r"assigned .*?kessai\.settlement\.first\[([\d,]*)\]")
OUTCOME = re.compile(r"order (\S+): [A-Z_]+ → ")


def last_assignment(log: str) -> set[int]:
    found = ASSIGNED.findall(log)
    return {int(p) for p in found[-1].split(",") if p} if found else set()


@pytest.fixture
def two_settlements() -> Iterator[System]:
    # Only the agents a purchase passes through: the others would start and poll for nothing.
    system = start_own(Settings.from_env(), list(BENCH_AGENTS), replicas={"settlement": 2})
    yield system
    system.stop()


async def test_two_settlement_workers_split_the_partitions_and_settle_each_order_once(
        two_settlements: System) -> None:
    system = two_settlements
    s = system.settings
    settlers = [w for w in system.workers if w.agent == "settlement"]
    assert len(settlers) == 2

    purchases = [bus.purchase(user=("alice", "carol", "dave")[i % 3],
                              shop=("shop-1", "shop-2")[i % 2]) for i in range(PURCHASES)]
    done = await drive(s, purchases, 90)
    assert [(p.outcome, p.shop_status) for p in done] == [("APPROVED", "PAID")] * PURCHASES
    keys_ = {join_key(p.command.shop_id, p.order_id) for p in done}
    assert len(keys_) == PURCHASES

    # The two workers own disjoint, non-empty halves of the partitions, all of them together.
    logs = [w.log_path.read_text(errors="replace") for w in settlers]
    owned = [last_assignment(log) for log in logs]
    assert all(owned), f"a settlement worker owns no partition: {owned}"
    assert not owned[0] & owned[1] and owned[0] | owned[1] == {0, 1, 2, 3}, owned
    # ... and each order was settled by exactly one of them, both having settled some.
    settled_by = [set(OUTCOME.findall(log)) & keys_ for log in logs]
    assert all(settled_by), "one settlement worker settled nothing"
    assert not settled_by[0] & settled_by[1]
    assert settled_by[0] | settled_by[1] == keys_

    # Exactly one outcome per order on the topic, and one charge per order at the issuer.
    registry = keys.load_registry(s.keys_dir)
    outcomes: dict[str, set[str]] = {k: set() for k in keys_}
    for r in await bus.read_all(s, "kessai.payment-results"):
        try:
            env = envelope.decode(r.value)
            envelope.verify(env, registry)
        except KessaiError:
            continue
        msg = envelope.body_of(env)
        if isinstance(msg, PaymentResult):
            outcomes.setdefault(join_key(msg.shop_id, msg.order_id), set()).add(msg.outcome)
    assert all(outcomes[k] == {"APPROVED"} for k in keys_), outcomes
    with closing(sqlite3.connect(Path(s.data_dir) / "issuer.sqlite")) as ledger:
        rows = ledger.execute("SELECT join_key, approved FROM decisions").fetchall()
    assert sorted(rows) == sorted((k, 1) for k in keys_)
