"""Crash and restart of real worker processes (kill -9): nothing pending is lost, nothing is
charged twice (spec R10, R23; acceptance scenario 17)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from tests.e2e.bus import purchase, run, types
from tests.e2e.conftest import System

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


async def test_settlement_killed_between_first_and_second_request_completes_the_join(
        system: System) -> None:
    """The user sends the 2nd request in time while the settlement worker is down, and the
    worker comes back only after the 2nd-request deadline: the join completes, because a
    restarted worker fires no deadline before it has read what was sent in time."""
    t_second = system.settings.t_second_ms
    p = purchase("carol", [["TEA1", 1]], second_delay_ms=t_second // 2)
    task = asyncio.create_task(run(system.settings, p, timeout=60))
    await asyncio.sleep(1.5)  # the 1st request is in the join's state by now
    system.kill("settlement")
    killed_ms = time.time() * 1000
    await asyncio.sleep(t_second / 1000)  # down past the deadline; the 2nd request is waiting
    await asyncio.to_thread(system.start, "settlement")
    [done] = await task
    first = next(h for h in done.hops if h.type == "settlement-first")
    second = next(h for h in done.hops if h.type == "settlement-second")
    assert first.at_ms < killed_ms < second.at_ms < first.at_ms + t_second
    assert done.outcome == "APPROVED" and done.shop_status == "PAID"


async def test_crash_between_fi_call_and_outcome_commit_charges_once(system: System) -> None:
    """(17) The issuer is down when the authorization is asked; the settlement worker dies
    while waiting; both come back: one charge, one outcome."""
    system.kill("issuer")
    try:
        p = purchase("alice", [["MUG1", 1]])
        task = asyncio.create_task(run(system.settings, p, timeout=90))
        await asyncio.sleep(4.0)  # the authorization request is on its topic, unanswered
        system.kill("settlement")
    finally:
        await asyncio.to_thread(system.start, "issuer")
    await asyncio.to_thread(system.start, "settlement")
    [done] = await task
    assert done.outcome == "APPROVED"
    assert types(done).count("authorization") >= 1
    key = next(i for i in done.ids if i.startswith("shop-1/") and "/ref:" not in i)
    with sqlite3.connect(system.settings.data_dir / "issuer.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM decisions WHERE join_key = ?",
                          (key,)).fetchone()[0] == 1
    assert [h.body["outcome"] for h in done.hops
            if h.type == "payment-result" and h.body["recipient"] == "user"
            and h.topic == "kessai.payment-results"] == ["APPROVED"]
