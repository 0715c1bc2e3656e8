"""Seed 002 G12 [X]: at-least-once delivery. Every record of a whole wake-up payment is
delivered a second time, from the same offset (as after a crash before the commit): no second
transaction number, mail, wake-up, credit request, charge or receipt; and the phone's state
never holds a card number or expiry (D11)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kessai.membus import MemoryBus
from kessai.settings import Settings
from sim import devdata, devkeys
from tests.e2e.tiers import MemoryTier
from tests.e2e.wakeup_world import WAKEUP_AGENTS, WAKEUP_ENV, press, ref, sale, screen

EFFECT_TOPICS = ("kessai.pos.txn-numbers", "kessai.direction.mail-requests",
                 "kessai.device.wakeups", "kessai.device.mail", "kessai.paygate.sessions",
                 "kessai.device.sessions", "kessai.credit.requests", "kessai.credit.responses",
                 "kessai.pos.completions", "kessai.pos.receipts", "kessai.paygate.txn-requests",
                 "kessai.shortrange.user-ids", "kessai.dead-letters")


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


@pytest.fixture
async def tier(keydir: Path, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MemoryTier]:
    for k, v in WAKEUP_ENV.items():
        monkeypatch.setenv(k, v)
    t = MemoryTier(Settings(keys_dir=keydir, data_dir=tmp_path), WAKEUP_AGENTS)
    try:
        yield t
    finally:
        await t.close()


async def pay(tier: MemoryTier) -> str:
    sale_ref = ref()
    await sale(tier, "pos-1", sale_ref)
    await press(tier, "1234567", "login", card="CARD A", user_id="00001", pos_id="pos-1")
    await press(tier, "1234567", "agree")
    await press(tier, "1234567", "choose", method="L")
    await screen(tier, "1234567", "completed")
    return sale_ref


async def redeliver_everything(bus: MemoryBus) -> None:
    for topic, recs in list(bus.log.items()):
        for rec in list(recs):
            for ctx in bus.contexts:
                if ctx.routes.on(topic):
                    await ctx.door.receive(topic, rec.partition, rec.offset, rec.key,
                                           rec.value)
    await bus.drain()


def counts(bus: MemoryBus) -> Counter[str]:
    return Counter({t: len(bus.log.get(t, [])) for t in EFFECT_TOPICS})


async def test_a_redelivered_payment_changes_nothing(tier: MemoryTier) -> None:
    await pay(tier)
    before = counts(tier.bus)
    assert before["kessai.credit.requests"] == 1 and before["kessai.pos.receipts"] == 1
    await redeliver_everything(tier.bus)
    after = counts(tier.bus)
    # The credit server answers a repeated request from its ledger (no second charge); that
    # repeat answer is the only new record, and the gateway takes it as decided already.
    assert after - before == Counter({"kessai.credit.responses": 1}), after - before
    assert [r.approved for r in tier.bus.messages("kessai.credit.responses")] == [True, True]


async def test_the_phone_never_holds_a_card_number_or_expiry(tier: MemoryTier) -> None:
    await pay(tier)
    tables = [t for ctx in tier.bus.contexts if ctx.name == "device"
              for t in ctx.host.tables.values()]  # type: ignore[attr-defined]
    blob = b"".join(k + v for t in tables for k, v in t.items())
    assert b"00001" in blob  # the scan looks at the real state
    for u in [u for u in devdata.WAKEUP_USERS if u.card_number]:
        assert u.card_number.encode() not in blob and u.expiration.encode() not in blob


async def test_the_gateway_keeps_the_users_history(tier: MemoryTier) -> None:
    """Fig. 8 / [0113]: each finished transaction goes into the user's table 154b, once."""
    import msgpack

    await pay(tier)
    await pay(tier)
    await redeliver_everything(tier.bus)
    [ctx] = [c for c in tier.bus.contexts if c.name == "paygate"]
    rows = msgpack.unpackb(ctx.host.tables["paygate-history"][b"00001"])  # type: ignore[attr-defined]
    assert [(r["outcome"], r["method"], r["total"]) for r in rows] == [("COMPLETED", "L", 4620)] * 2
    assert len({r["transaction_number"] for r in rows}) == 2


async def test_the_folded_form_pushes_the_mail_itself(keydir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """[X] KESSAI_DIRECTION_FOLDED=1: no reception message and no fetch; the mail is pushed."""
    for k, v in {**WAKEUP_ENV, "KESSAI_DIRECTION_FOLDED": "1"}.items():
        monkeypatch.setenv(k, v)
    t = MemoryTier(Settings(keys_dir=keydir, data_dir=tmp_path), WAKEUP_AGENTS)
    try:
        await pay(t)
        assert t.bus.log.get("kessai.device.wakeups", []) == []
        assert t.bus.log.get("kessai.direction.mail-fetch", []) == []
        assert len(t.bus.log["kessai.device.mail"]) == 1
    finally:
        await t.close()
