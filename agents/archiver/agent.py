"""The archiver (issue 10): copies every catalogued topic, byte for byte, into the audit archive.

It sits *beside* the door, not behind it: the archive must hold every record as the broker
delivered it, including the ones the door would dead-letter (undecodable bytes, forged
signatures), so nothing here decodes, verifies or drops a record. It is the design's "small
aiokafka loop where faust does not fit", hosted by the worker for its lifecycle:

1. at start, the chain heads are read from the archive and each partition of every topic of
   the catalogue (read at start-up) is read from the record after its head — the archive, not
   the group's committed offset, says where to resume, so a redelivery is stored once;
2. each poll's records extend their partitions' hash chains (:mod:`agents.archiver.chain`) and
   are written in one SQLite transaction; only then are the offsets committed (they serve lag
   monitoring; the archive stays the source of truth);
3. every ``KESSAI_ARCHIVE_CHECKPOINT_S`` seconds [I] (and when it stops) the archiver signs the
   chain heads as a :class:`~schemas.v1.Checkpoint` with its Ed25519 key, keeps it in the
   archive and sends it to ``kessai.audit.checkpoints``, where the archive cannot rewrite it.

The archive file is ``KESSAI_ARCHIVE`` if set, else ``archive.sqlite`` in the worker's data
directory (``kessai up``: the run's directory, ``.kessai/runs/<time>/``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from agents.archiver.chain import Chains, Row, checkpoint
from agents.archiver.store import ArchiveStore
from kessai import envelope
from kessai.errors import ConfigError
from kessai.runtime import AgentContext
from kessai.settings import Settings, Waits
from kessai.transport import adapt_fetcher
from topics.catalogue import CATALOGUE, CHECKPOINTS

log = logging.getLogger("kessai.archiver")

ACTORS = ["archiver"]
ARCHIVE_FILE = "archive.sqlite"
CHECKPOINT_S = 10.0  # [I] how often the chain heads are signed (KESSAI_ARCHIVE_CHECKPOINT_S)
MAX_BATCH = 2_000  # [I] records per poll, one SQLite transaction each
DRAIN_S = 2.0  # when stopping: at most this long to archive what the broker still holds


def archive_path(settings: Settings) -> Path:
    """Where the archive lives: ``KESSAI_ARCHIVE``, else the data directory's archive.sqlite."""
    env = os.environ.get("KESSAI_ARCHIVE")
    return Path(env) if env else settings.data_dir / ARCHIVE_FILE


def checkpoint_interval() -> float:
    raw = os.environ.get("KESSAI_ARCHIVE_CHECKPOINT_S")
    try:
        value = float(raw) if raw else CHECKPOINT_S
    except ValueError:
        raise ConfigError(f"KESSAI_ARCHIVE_CHECKPOINT_S must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"KESSAI_ARCHIVE_CHECKPOINT_S must be positive, got {raw!r}")
    return value


def policy_of(settings: Settings) -> dict[str, int]:
    """The settlement deadlines the system runs with, recorded in every checkpoint."""
    return {"t_first_ms": settings.t_first_ms, "t_second_ms": settings.t_second_ms,
            "t_history_ms": settings.t_history_ms, "t_authorize_ms": settings.t_authorize_ms,
            "result_redelivery_ms": settings.result_redelivery_ms}


def heads_to_sign(heads: Mapping[tuple[str, int], Any]) -> dict[tuple[str, int], int]:
    """What decides whether a checkpoint is due: every partition's head offset except those of
    the checkpoint topic itself. Each checkpoint is archived too; counting it would make every
    checkpoint call for the next, so an idle archiver would sign and send one per interval
    forever (and never reach its deep idle wait). A checkpoint still covers those heads."""
    return {tp: h.offset for tp, h in heads.items() if tp[0] != CHECKPOINTS}


def archive_waits(waits: Waits) -> Waits | None:
    """The archiver's fetch wait: never shorter than the workers' idle wait (the archive needs
    no low latency, and its one fetch covers every partition of every topic: ~300 on the
    embedded broker, whose CPU grows with partitions × fetches), and as deep as theirs once
    nothing has arrived for ``deep_idle_after_ms``. None when there is no deeper tier (a real
    cluster answers a waiting fetch at once, so its one wait is all there is)."""
    if not waits.fetch_wait_deep_ms or waits.fetch_wait_deep_ms <= waits.fetch_wait_idle_ms:
        return None
    return replace(waits, fetch_wait_busy_ms=waits.fetch_wait_idle_ms,
                   fetch_wait_quiet_ms=waits.fetch_wait_idle_ms)


class Archiver:
    """The archive loop. ``run()`` until ``stop()``; the last batch and a final checkpoint are
    written before ``run`` returns."""

    def __init__(self, ctx: AgentContext, path: Path, interval_s: float) -> None:
        self.ctx = ctx
        self.path = path
        self.interval_s = interval_s
        self.store: ArchiveStore | None = None
        self.chains = Chains()
        self.archive_id = ""
        self.seq = 0
        self.archived = 0
        self.lag = 0
        self._stopping = asyncio.Event()
        self._done = asyncio.Event()
        self._signed_heads: dict[tuple[str, int], int] = {}

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            log.exception("archiver stopped on an error")
            raise
        finally:
            self._done.set()

    async def stop(self) -> None:
        self._stopping.set()
        await self._done.wait()

    async def _run(self) -> None:
        settings = self.ctx.settings
        self.store = await ArchiveStore.open(self.path)
        self.archive_id = await self.store.archive_id(uuid.uuid4().hex)
        self.seq = await self.store.last_checkpoint_seq()
        self.chains = Chains(await self.store.heads())
        tps = [TopicPartition(t.name, p) for t in CATALOGUE for p in range(t.partitions)]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap, group_id="kessai-archiver-log",
            client_id=f"{settings.client_id_prefix}-archiver", enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_wait_ms=settings.waits.fetch_wait_idle_ms,
            max_poll_records=MAX_BATCH)
        log.info("archiving %d partitions of %d topics into %s", len(tps), len(CATALOGUE),
                 self.path)
        await consumer.start()
        deeper = archive_waits(settings.waits)
        if deeper is not None:
            adapt_fetcher(consumer, deeper)
        try:
            consumer.assign(tps)
            fresh = []
            for tp in tps:
                head = self.chains.heads.get((tp.topic, tp.partition))
                if head is None:
                    fresh.append(tp)
                else:
                    consumer.seek(tp, head.offset + 1)
            if fresh:  # one offsets request for all of them, not one round trip each
                await consumer.seek_to_beginning(*fresh)
            next_checkpoint = time.monotonic() + self.interval_s
            while not self._stopping.is_set():
                await self._poll(consumer, tps)
                if time.monotonic() >= next_checkpoint:
                    await self.checkpoint()
                    next_checkpoint = time.monotonic() + self.interval_s
            # Stopping: take what the broker holds by now, then sign the heads — within the
            # supervisor's stop grace (a worker still busy after it is killed).
            deadline = time.monotonic() + DRAIN_S
            while await self._poll(consumer, tps) and time.monotonic() < deadline:
                pass
            await self.checkpoint(send_timeout_s=DRAIN_S)
        finally:
            await consumer.stop()
            await self.store.close()

    async def _poll(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> int:
        """Archive one poll's records; returns how many were new."""
        batch = await consumer.getmany(timeout_ms=500, max_records=MAX_BATCH)
        records = [(m.topic, m.partition, m.offset, m.timestamp, m.key, m.headers, m.value)
                   for messages in batch.values() for m in messages]
        rows: list[Row] = []
        if records:
            rows = self.chains.extend(records)
            assert self.store is not None
            try:
                await self.store.append(rows)
            except Exception:
                # Nothing of the batch is stored: the heads go back to what the file holds.
                self.chains = Chains(await self.store.heads())
                raise
            self.archived += len(rows)
            try:  # after the transaction committed; the archive says where to resume anyway
                await consumer.commit({tp: messages[-1].offset + 1
                                       for tp, messages in batch.items() if messages})
            except KafkaError as exc:
                log.warning("archiver: offset commit failed (%s); the archive is intact", exc)
        lag = 0
        for tp in tps:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag += max(0, highwater - await consumer.position(tp))
        self.lag = lag
        return len(rows)

    async def checkpoint(self, send_timeout_s: float | None = None) -> None:
        """Sign the chain heads and keep them in the archive and on the checkpoint topic."""
        current = heads_to_sign(self.chains.heads)
        if current == self._signed_heads:
            return
        assert self.store is not None
        self.seq += 1
        msg = checkpoint(self.chains, self.archive_id, self.seq, policy_of(self.ctx.settings))
        keys = self.ctx.actor_keys("archiver")
        self.ctx.emitter.check_producer(CHECKPOINTS, keys.actor)
        env = envelope.seal_envelope(msg, self.archive_id, keys, self.ctx.clock)
        raw = envelope.encode(env)
        await self.store.add_checkpoint(self.seq, env.created_ms, raw)
        send = self.ctx.host.send(CHECKPOINTS, self.archive_id.encode(), raw, None,
                                  env.headers())
        try:
            await asyncio.wait_for(send, send_timeout_s)
        except TimeoutError:
            # Kept in the archive already; the topic copy is what a stopping worker can lose.
            log.warning("archive checkpoint %d not sent to %s in time", self.seq, CHECKPOINTS)
        self._signed_heads = current
        log.info("archive checkpoint %d: %d records archived, %d partitions, lag %d",
                 self.seq, self.archived, len(msg.heads), self.lag)


def register(ctx: AgentContext) -> None:
    archiver = Archiver(ctx, archive_path(ctx.settings), checkpoint_interval())
    ctx.on_start(archiver.run)
    ctx.on_stop(archiver.stop)
