"""Kill -9 each worker in turn with purchases in flight (issue 6 item 10).

Twenty purchases start together. Then the settlement, issuer, shop and terminal workers are
each killed with SIGKILL, a second apart, and restarted at once (as ``kessai up``'s supervisor
does). Most users confirm within a few seconds, so their results come back while the workers
are down or restarting; a few are still thinking when the terminal dies, so their 2nd requests
are due while it is down. Every order must still reach exactly one final status at the shop,
and it must match the settlement outcome: PAID if and only if APPROVED; and every user's 2nd
request must have been sent. The check reads only the topics (``kessai.order-status``,
``kessai.payment-results``, ``kessai.settlement.second``), as an operator would.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from kessai import envelope, keys
from kessai.authenticators import join_key
from kessai.clock import SystemClock
from kessai.errors import KessaiError
from kessai.settings import Settings
from schemas.v1 import OrderStatus, PaymentResult, PurchaseCommand, SecondRequest
from sim.journey import new_session
from tests.e2e.bus import read_all
from tests.e2e.conftest import System

pytestmark = [pytest.mark.e2e, pytest.mark.broker, pytest.mark.timeout(420)]

COMMANDS = "kessai.terminal.commands"
KILL_ORDER = ("settlement", "issuer", "shop", "terminal")
PURCHASES = 20
FIRST_KILL_S = 1.5  # after the purchase commands went out
KILL_GAP_S = 1.0
SETTLE_WITHIN_S = 100.0  # from the first command until every order is final at the shop
FINAL = {"PAID", "NOT_PAID"}


def think_time_ms(i: int) -> int:
    """0–3.25 s for most users (paid before the terminal dies, settled while workers are down
    or restarting); 5.5–8 s for the last six (due while the terminal is down)."""
    return 250 * i if i < PURCHASES - 6 else 5_500 + 500 * (i - PURCHASES + 6)


def commands() -> list[PurchaseCommand]:
    """Mostly approvals, some declines (bob over his limit) and a mismatch."""
    out = []
    for i in range(PURCHASES):
        kw: dict[str, Any] = {"second_delay_ms": think_time_ms(i)}
        if i % 5 == 4:
            user, items = "bob", [["MUG1", 2]]  # over bob's limit: DECLINED
        else:
            user, items = ("alice", "carol", "dave")[i % 3], [["XXXX", 1], ["YYYY", 1]]
        if i == 7:
            kw["user_tamper"] = "amount"  # MISMATCH
        out.append(PurchaseCommand(session=new_session(), user_id=user,
                                   shop_id=("shop-1", "shop-2")[i % 2], items=items, **kw))
    return out


async def send_commands(settings: Settings, cmds: list[PurchaseCommand]) -> None:
    operator = keys.load_actor(settings.keys_dir, "operator")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                                enable_idempotence=False)
    await producer.start()
    try:
        for cmd in cmds:
            env = envelope.seal_envelope(cmd, cmd.session, operator, SystemClock())
            await producer.send(COMMANDS, envelope.encode(env), key=cmd.session.encode(),
                                headers=env.headers())
        await producer.flush()
    finally:
        await producer.stop()


@dataclass
class Ledger:
    """What the topics say about our purchases."""

    order_of: dict[str, str] = field(default_factory=dict)  # session → join key
    statuses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    outcomes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    seconds: set[str] = field(default_factory=set)  # join keys with a 2nd request

    def final(self, key: str) -> list[str]:
        return [s for s in self.statuses[key] if s in FINAL]

    def unsettled(self, sessions: list[str]) -> list[str]:
        """Sessions whose order is not yet final at the shop or not yet settled."""
        return [s for s in sessions if s not in self.order_of
                or not self.final(self.order_of[s]) or not self.outcomes[self.order_of[s]]]

    def unsent(self, sessions: list[str]) -> list[str]:
        """Sessions whose user's 2nd request is not on its topic (yet)."""
        return [s for s in sessions if self.order_of.get(s) not in self.seconds]


async def read_ledger(settings: Settings, sessions: set[str]) -> Ledger:
    registry = keys.load_registry(settings.keys_dir)
    ledger = Ledger()

    def messages(records: list[Any]) -> list[Any]:
        out = []
        for r in records:
            try:
                env = envelope.decode(r.value)
                envelope.verify(env, registry)
                out.append(envelope.body_of(env))
            except KessaiError:
                continue
        return out

    statuses, results, seconds = await asyncio.gather(
        read_all(settings, "kessai.order-status"), read_all(settings, "kessai.payment-results"),
        read_all(settings, "kessai.settlement.second"))
    for st in messages(statuses):
        if isinstance(st, OrderStatus) and st.session in sessions and st.order_id:
            key = join_key(st.shop_id, st.order_id)
            ledger.order_of[st.session] = key
            ledger.statuses[key].append(st.status)
    for res in messages(results):
        if isinstance(res, PaymentResult):
            ledger.outcomes[join_key(res.shop_id, res.order_id)].add(res.outcome)
    for second in messages(seconds):
        if isinstance(second, SecondRequest) and second.session in sessions:
            ledger.seconds.add(join_key(second.shop_id, second.order_id))
    return ledger


async def kill_and_restart_each(system: System) -> list[tuple[str, float]]:
    """SIGKILL each worker a second apart; each is restarted at once, in the background."""
    restarts = []
    killed_at = []
    for agent in KILL_ORDER:
        system.kill(agent)
        killed_at.append((agent, time.monotonic()))
        restarts.append(asyncio.create_task(asyncio.to_thread(system.start, agent, 90.0)))
        await asyncio.sleep(KILL_GAP_S)
    await asyncio.gather(*restarts)
    return killed_at


async def test_every_order_ends_paid_iff_approved_when_each_worker_is_killed(
        system: System) -> None:
    s = system.settings
    cmds = commands()
    sessions = [c.session for c in cmds]
    t0 = time.monotonic()
    await send_commands(s, cmds)
    await asyncio.sleep(FIRST_KILL_S)
    kills = await kill_and_restart_each(system)
    restarted_s = time.monotonic() - t0

    ledger = Ledger()
    while time.monotonic() - t0 < SETTLE_WITHIN_S:
        ledger = await read_ledger(s, set(sessions))
        # A 2nd request due while the terminal was down is sent once it is back, possibly
        # after its order expired (final already): wait for those too, not only for finals.
        if not ledger.unsettled(sessions) and not ledger.unsent(sessions):
            break
        await asyncio.sleep(1.0)
    settled_s = time.monotonic() - t0

    rows = []
    for session in sessions:
        key = ledger.order_of.get(session, "")
        rows.append((session, key, sorted(ledger.outcomes.get(key, ())),
                     ledger.statuses.get(key, [])))
    tally: dict[str, int] = defaultdict(int)
    for _, _, outcomes, statuses in rows:
        final = [x for x in statuses if x in FINAL]
        tally[f"{'/'.join(outcomes) or 'NO_OUTCOME'}→{final[-1] if final else 'NOT_FINAL'}"] += 1
    print(f"\nkill test: {PURCHASES} purchases; kills at "
          + ", ".join(f"{a} +{at - t0:.1f}s" for a, at in kills)
          + f"; all restarted by +{restarted_s:.1f}s; checked at +{settled_s:.1f}s")
    print("  outcome→shop status: " + ", ".join(f"{k} ×{n}" for k, n in sorted(tally.items()))
          + f"; 2nd requests sent for {len(ledger.seconds)} of {PURCHASES}")

    problems = []
    for session, key, outcomes, statuses in rows:
        final = sorted(set(x for x in statuses if x in FINAL))
        if not key:
            problems.append(f"{session}: no order at the shop")
        elif key not in ledger.seconds:
            problems.append(f"{key}: the user's 2nd request was never sent ({outcomes})")
        elif len(outcomes) != 1:
            problems.append(f"{key}: settlement outcomes {outcomes}")
        elif len(final) != 1:
            problems.append(f"{key}: {outcomes[0]} but shop statuses {statuses}")
        elif (final[0] == "PAID") != (outcomes[0] == "APPROVED"):
            problems.append(f"{key}: {outcomes[0]} but the shop says {final[0]}")
    assert not problems, f"{len(problems)} of {PURCHASES} orders wrong:\n" + "\n".join(problems)
