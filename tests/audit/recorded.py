"""Test helpers: a day of mixed purchases recorded on the in-memory bus (real handlers, real
crypto, a fake clock), and archives written from such a record exactly as the archiver writes
them (its chain and store modules, a checkpoint signed with the archiver's key)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.archiver.chain import GENESIS, Chains, Row, checkpoint, expected_hash
from agents.archiver.store import ArchiveStore
from kessai import envelope, keys
from kessai.clock import FakeClock
from kessai.membus import MemoryBus, Record
from kessai.settings import Settings
from schemas.v1 import PurchaseCommand
from sim.journey import new_session
from tests.agents import agent_module

COMMANDS = "kessai.terminal.commands"
ITEMS = [["XXXX", 1], ["YYYY", 1]]
ARCHIVE_ID = "test-archive"


@dataclass(frozen=True)
class Recorded:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    value: bytes | None


class RecordingBus(MemoryBus):
    """The in-memory bus, remembering every record in the order it was appended, with the
    fake clock's time as its timestamp (what a broker's log would hold)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, FakeClock())
        self.recorded: list[Recorded] = []

    def append(self, topic: str, key: bytes, value: bytes, partition: int | None = None,
               headers: Iterable[tuple[str, bytes]] = ()) -> Record:
        rec = super().append(topic, key, value, partition, headers)
        self.recorded.append(Recorded(rec.topic, rec.partition, rec.offset,
                                      self.clock.now_ms(), rec.key, rec.headers, rec.value))
        return rec

    async def buy(self, user: str = "alice", **kw: Any) -> PurchaseCommand:
        cmd = PurchaseCommand(session=new_session(), user_id=user, shop_id="shop-1",
                              items=ITEMS, **kw)
        await self.send(COMMANDS, cmd, cmd.session, "operator")
        await self.drain()
        return cmd

    async def elapse(self, ms: int, step: int = 500) -> None:
        for _ in range(0, ms, step):
            self.clock.advance(step)  # type: ignore[attr-defined]
            await self.tick()


def policy_of(settings: Settings) -> dict[str, int]:
    return {"t_first_ms": settings.t_first_ms, "t_second_ms": settings.t_second_ms,
            "t_history_ms": settings.t_history_ms, "t_authorize_ms": settings.t_authorize_ms,
            "result_redelivery_ms": settings.result_redelivery_ms}


async def mixed_day(settings: Settings, rounds: int = 3) -> RecordingBus:
    """APPROVED, DECLINED (expired card), MISMATCH (the user alters the amount), AUTH_FAILED
    (a wrong password) and EXPIRED (no 2nd request) purchases, each through the terminal,
    shop, settlement and issuer handlers."""
    bus = RecordingBus(settings)
    for agent in ("settlement", "issuer", "shop", "terminal"):
        bus.add_module(agent, agent_module(agent))
    await bus.start()
    for _ in range(rounds):
        await bus.buy("alice")
        await bus.buy("alice", card="expired")
        await bus.buy("alice", user_tamper="amount")
        await bus.buy("dave", wrong_password=True)
        await bus.buy("alice", abandon=True)
        await bus.buy("carol")
    await bus.elapse(settings.t_first_ms + 2_000)
    await bus.stop()
    return bus


async def write_archive(path: Path, records: Iterable[Recorded], keys_dir: Path,
                        policy: dict[str, int]) -> None:
    """An archive of ``records`` as the archiver writes it, with one signed checkpoint."""
    chains = Chains()
    rows = chains.extend((r.topic, r.partition, r.offset, r.timestamp_ms, r.key,
                          list(r.headers), r.value) for r in records)
    store = await ArchiveStore.open(path)
    try:
        await store.append(rows)
        cp = checkpoint(chains, ARCHIVE_ID, 1, policy)
        env = envelope.seal_envelope(cp, ARCHIVE_ID, keys.load_actor(keys_dir, "archiver"),
                                     FakeClock())
        await store.add_checkpoint(1, env.created_ms, envelope.encode(env))
    finally:
        await store.close()


def copy_of(path: Path, to: Path) -> Path:
    shutil.copy(path, to)
    return to


def edit(path: Path, change: Callable[[sqlite3.Connection], None]) -> None:
    db = sqlite3.connect(path)
    with db:
        change(db)
    db.close()


def rechain(db: sqlite3.Connection, topic: str, partition: int) -> None:
    """Recompute one partition's chain after an edit (what a careful forger would do)."""
    prev = GENESIS
    rows = db.execute("SELECT topic, partition, offset, timestamp_ms, key, headers, value, "
                      "prev_hash, hash FROM records WHERE topic = ? AND partition = ? "
                      "ORDER BY offset", (topic, partition)).fetchall()
    for r in rows:
        row = Row(*r[:7], prev, b"")  # type: ignore[arg-type]
        h = expected_hash(row)
        db.execute("UPDATE records SET prev_hash = ?, hash = ? WHERE topic = ? AND "
                   "partition = ? AND offset = ?", (prev, h, topic, partition, row.offset))
        prev = h
