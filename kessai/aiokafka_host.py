"""A worker host on aiokafka alone: one consumer loop, no faust on the hot path (issue 6).

The same :class:`kessai.runtime.Host` as :class:`kessai.runtime.FaustHost`, so every agent
runs on either unchanged (``KESSAI_HOST=aiokafka|faust``). What faust did per event (a
consumer thread handing each fetch over, per-event stream bookkeeping, a buffered changelog
producer, its timers) is here one loop per worker:

1. ``getmany`` brings what the fetcher holds (at most ``max_poll_records``); every record goes
   through the agent's door in partition order, with the record's partition in
   :data:`kessai.tables.RECORD_PARTITION` so table writes land on the co-partitioned changelog;
2. the batch is flushed (:mod:`kessai.batch`: stores commit, held records are handed to the
   producer), and the table writes are handed to the producer too; none is awaited;
3. every ``commit_interval_ms`` (and before a rebalance takes partitions away, and at stop)
   the producer is flushed and every record sent so far checked as acknowledged, and only then
   are the handled offsets committed. A send that failed ends the worker before the commit, so
   its input is redelivered after the restart, as after a kill -9.

Consumer group: every worker of one agent type shares ``kessai-<agent>``; the range assignor
gives a worker the same partition numbers of every topic with the same partition count
(co-partitioning, which the settlement join and the tables rely on). On an assignment the
tables drop the partitions the worker lost and rebuild those it gained from their changelogs
before any record of them is handled. There are no standby copies: a gained partition is read
from its changelog's beginning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from kessai.settings import Settings
from kessai.tables import RECORD_PARTITION, ChangelogTable, changelog_topic
from kessai.transport import adapt_fetcher, describe_assignment

if TYPE_CHECKING:
    from kessai.runtime import AgentContext, Hook

log = logging.getLogger("kessai.host")

READY = "Ready"  # what the supervisor waits for in a worker's log (kessai.supervisor)
POLL_MS = 200  # how long one getmany waits before the loop looks at its stop flag again
EXIT_UNDURABLE = 75  # a batch could not be made durable: the supervisor restarts the worker


class AiokafkaHost:
    """One worker of one agent type on aiokafka."""

    def __init__(self, agent: str, settings: Settings) -> None:
        self.agent = agent
        self.settings = settings
        self.group = f"kessai-{agent}"
        self.tables: dict[str, ChangelogTable] = {}
        self._ctx: AgentContext | None = None
        self._timers: list[tuple[float, Hook]] = []
        self._starts: list[Hook] = []
        self._stops: list[Hook] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._restorer: AIOKafkaConsumer | None = None
        self._early: list[tuple[str, bytes, bytes | None, int | None,
                                list[tuple[str, bytes]]]] = []
        self._changes: list[tuple[str, bytes, bytes | None, int]] = []
        self._inflight: list[asyncio.Future[Any]] = []
        self._handled: dict[TopicPartition, int] = {}  # the last offset the door handled
        self._returned: dict[TopicPartition, int] = {}  # the last offset getmany returned
        self._committed: dict[TopicPartition, int] = {}
        self._assigned: set[TopicPartition] = set()
        self._lock = asyncio.Lock()  # handling a poll's records vs. a rebalance's commit
        self._stop = asyncio.Event()
        self._ready = False
        self._last_commit = time.monotonic()

    # -- the Host protocol -------------------------------------------------------------------
    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None,
                   headers: list[tuple[str, bytes]]) -> None:
        await self._send(topic, key, value, partition, headers)

    def table(self, name: str, partitions: int) -> MutableMapping[bytes, bytes]:
        topic = changelog_topic(self.agent, name)
        if topic not in self.tables:
            self.tables[topic] = ChangelogTable(topic, partitions, self._changed)
        return self.tables[topic]

    def active_partitions(self, topic: str) -> set[int]:
        return {tp.partition for tp in self._assigned if tp.topic == topic}

    def caught_up(self, topic: str, partition: int) -> bool:
        # Everything the latest fetch said the log holds (highwater) was handed over by the
        # consumer (its position, which aiokafka advances as it returns records) and handled.
        tp = TopicPartition(topic, partition)
        if self._consumer is None or tp not in self._assigned:
            return False
        highwater = self._consumer.highwater(tp)
        position = self._position(tp)
        if highwater is None or position is None or position < highwater:
            return False
        returned = self._returned.get(tp)
        return returned is None or self._handled.get(tp) == returned

    def _position(self, tp: TopicPartition) -> int | None:
        try:  # aiokafka keeps it per partition; consumer.position() would wait for a reset
            state = self._consumer._subscription.subscription.assignment.state_value(tp)  # type: ignore[union-attr]
        except AttributeError:
            return None
        if state is None or not state.has_valid_position:
            return None
        return int(state.position)

    def every(self, seconds: float, fn: Hook) -> None:
        self._timers.append((seconds, fn))

    def at_start(self, fn: Hook) -> None:
        self._starts.append(fn)

    def at_stop(self, fn: Hook) -> None:
        self._stops.append(fn)

    def bind(self, ctx: AgentContext) -> None:
        self._ctx = ctx

    # -- sending -----------------------------------------------------------------------------
    async def _send(self, topic: str, key: bytes, value: bytes | None, partition: int | None,
                    headers: list[tuple[str, bytes]]) -> None:
        if self._producer is None:  # a start hook that emits before the producer is up
            self._early.append((topic, key, value, partition, headers))
            return
        future = await self._producer.send(topic, value=value, key=key, partition=partition,
                                           headers=headers)
        self._inflight.append(future)

    def _changed(self, topic: str, key: bytes, value: bytes | None, partition: int) -> None:
        self._changes.append((topic, key, value, partition))
        if RECORD_PARTITION.get() is None:  # not in a handler: nobody else sends it soon
            asyncio.get_running_loop().create_task(self._send_changes())

    async def _send_changes(self) -> None:
        while self._changes:
            topic, key, value, partition = self._changes.pop(0)
            await self._send(topic, key, value, partition, [])

    async def _flush(self) -> None:
        """Stores commit, then every record held or written is handed to the producer."""
        assert self._ctx is not None
        try:
            await self._ctx.batch.flush()
            await self._send_changes()
        except Exception as exc:
            self._die(f"a batch could not be made durable ({type(exc).__name__}: {exc})")

    async def _durable(self) -> None:
        """Return only when the broker has acknowledged every record sent so far."""
        if self._producer is None:
            return
        inflight, self._inflight = self._inflight, []
        await self._producer.flush()
        for future in inflight:
            if not future.done():
                await future
            exc = future.exception()
            if exc is not None:
                self._die(f"the broker did not take a record ({type(exc).__name__}: {exc})")

    def _die(self, why: str) -> None:
        # Nothing of the batch was committed, so the supervisor's restart redelivers it — the
        # same as a kill -9 — instead of an agent that silently stops consuming.
        log.critical("%s: %s; exiting so that its records are redelivered", self.agent, why)
        logging.shutdown()
        os._exit(EXIT_UNDURABLE)

    async def _commit(self) -> None:
        """Flush, wait for every ack, then commit what was handled (kessai's one rule)."""
        await self._flush()
        await self._durable()
        self._last_commit = time.monotonic()
        offsets = {tp: OffsetAndMetadata(off + 1, "") for tp, off in self._handled.items()
                   if tp in self._assigned and self._committed.get(tp, -1) < off + 1}
        if not offsets or self._consumer is None:
            return
        try:
            await self._consumer.commit(offsets)
        except Exception as exc:  # a rebalance raced us: the new owner redoes, idempotently
            log.warning("offset commit failed (%s); those records will be handled again",
                        type(exc).__name__)
            return
        for tp, meta in offsets.items():
            self._committed[tp] = meta.offset

    # -- rebalance ---------------------------------------------------------------------------
    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            await self._commit()

    async def _assigned_now(self, assigned: set[TopicPartition]) -> None:
        self._assigned = set(assigned)
        for seen in (self._handled, self._returned):
            for tp in list(seen):
                if tp not in self._assigned:
                    del seen[tp]
        self._committed = {tp: o for tp, o in self._committed.items() if tp in self._assigned}
        numbers = {tp.partition for tp in assigned}
        await self._restore(numbers)
        log.info("assigned %s", describe_assignment(assigned))
        self._mark_ready()

    async def _restore(self, numbers: set[int]) -> None:
        """Tables: drop the partitions lost, rebuild the partitions gained from the
        changelogs, up to the end offset each had when the assignment came."""
        wanted: list[TopicPartition] = []
        for table in self.tables.values():
            owned = {p for p in numbers if p < table.partitions}
            held = table.held_partitions()
            table.drop(held - owned)
            # A partition held before is rebuilt too: between two assignments another worker
            # may have owned it and written to it.
            wanted += [TopicPartition(table.topic, p) for p in sorted(owned)]
        if not wanted or self._restorer is None:
            return
        started = time.monotonic()
        restorer = self._restorer
        restorer.assign(wanted)
        await restorer.seek_to_beginning(*wanted)
        for tp in wanted:
            self.tables[tp.topic].drop([tp.partition])
        # The end is each partition's high watermark as the fetch responses give it, not
        # ListOffsets: the embedded broker answers that short of the end when the last batch
        # holds several records, and a table rebuilt short of its end has lost a write.
        left = set(wanted)
        records = 0
        while left:
            fetched = await restorer.getmany(*left, timeout_ms=POLL_MS)
            for tp, batch in fetched.items():
                table = self.tables[tp.topic]
                for r in batch:
                    table.restored(tp.partition, r.key, r.value)
                records += len(batch)
            for tp in list(left):
                end = restorer.highwater(tp)
                if end is not None and await restorer.position(tp) >= end:
                    left.discard(tp)
        restorer.assign([])
        if records:
            log.info("tables rebuilt from %d changelog record(s) in %.0f ms", records,
                     (time.monotonic() - started) * 1000)

    def _mark_ready(self) -> None:
        if not self._ready:
            self._ready = True
            log.info("[%s]: %s", self.group, READY)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, signals: bool = True) -> None:
        """Run the worker until SIGTERM/SIGINT (with ``signals``) or :meth:`stop`, then stop
        cleanly."""
        assert self._ctx is not None, "bind() first"
        if signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
        try:
            await self.start()
            await self._consume()
        finally:
            await self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> bool:
        """True once the first assignment is in and its tables are rebuilt."""
        return self._ready

    async def start(self) -> None:
        s, w = self.settings, self.settings.waits
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, client_id=f"{s.client_id_prefix}-{self.agent}",
            acks="all", enable_idempotence=False, linger_ms=w.linger_ms)
        await self._producer.start()
        for early in self._early:
            await self._send(*early)
        self._early.clear()
        topics = sorted(self._ctx.routes.topics()) if self._ctx else []
        if self.tables:
            await self._create_changelogs()
            self._restorer = AIOKafkaConsumer(
                bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False,
                client_id=f"{s.client_id_prefix}-{self.agent}-restore",
                fetch_max_wait_ms=w.fetch_wait_busy_ms)
            await self._restorer.start()
        if topics:
            host = self

            class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
                async def on_partitions_revoked(self, revoked: Any) -> None:
                    await host._revoked(set(revoked))

                async def on_partitions_assigned(self, assigned: Any) -> None:
                    await host._assigned_now(set(assigned))

            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=s.bootstrap, group_id=self.group,
                client_id=f"{s.client_id_prefix}-{self.agent}",
                enable_auto_commit=False, auto_offset_reset="earliest",
                fetch_max_wait_ms=w.fetch_wait_busy_ms, max_poll_records=w.max_poll_records,
                partition_assignment_strategy=(RangePartitionAssignor,),
                session_timeout_ms=int(s.session_timeout_s * 1000),
                rebalance_timeout_ms=int(s.rebalance_timeout_s * 1000),
                heartbeat_interval_ms=1000)
            self._consumer.subscribe(topics, listener=Listener())
            await self._consumer.start()
            if w.fetch_wait_idle_ms > w.fetch_wait_busy_ms:
                adapt_fetcher(self._consumer, w)
        for fn in self._starts:
            self._tasks.append(asyncio.create_task(self._guarded(fn), name=fn.__qualname__))
        for seconds, fn in self._timers:
            self._tasks.append(asyncio.create_task(self._every(seconds, fn),
                                                   name=fn.__qualname__))
        if not topics:
            self._mark_ready()

    async def _create_changelogs(self) -> None:
        s = self.settings
        client = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap,
                                     client_id=f"{s.client_id_prefix}-{self.agent}-admin")
        await client.start()
        try:
            existing = set(await client.list_topics())
            missing = [t for t in self.tables.values() if t.topic not in existing]
            if missing:
                # Three copies where the cluster has them (as topics.provision does).
                brokers = len((await client.describe_cluster())["brokers"])
                replication = max(1, min(3, brokers))
                await client.create_topics(
                    [NewTopic(t.topic, t.partitions, replication,
                              topic_configs={"cleanup.policy": "compact"}) for t in missing])
        finally:
            await client.close()

    async def _consume(self) -> None:
        consumer = self._consumer
        if consumer is None:
            await self._stop.wait()
            return
        assert self._ctx is not None
        door, batch = self._ctx.door, self._ctx.batch
        interval = self.settings.waits.commit_interval_ms / 1000
        while not self._stop.is_set():
            fetched = await consumer.getmany(timeout_ms=POLL_MS)
            for tp, records in fetched.items():
                if records:
                    self._returned[tp] = records[-1].offset
            if fetched:
                async with self._lock:
                    with batch.active():
                        for tp, records in fetched.items():
                            if tp not in self._assigned:
                                continue  # taken away while this poll waited
                            for m in records:
                                token = RECORD_PARTITION.set(m.partition)
                                try:
                                    value = m.value if isinstance(m.value, bytes) else b""
                                    await door.receive(m.topic, m.partition, m.offset, m.key,
                                                       value)
                                finally:
                                    RECORD_PARTITION.reset(token)
                                self._handled[tp] = m.offset
                                if batch.handled_one():
                                    await self._flush()
                        await self._flush()
            if time.monotonic() - self._last_commit >= interval:
                async with self._lock:
                    await self._commit()

    async def _guarded(self, fn: Hook) -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: start hook %s failed", self.agent, fn.__qualname__)

    async def _every(self, seconds: float, fn: Hook) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await fn()
                await self._send_changes()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: timer %s failed", self.agent, fn.__qualname__)

    async def shutdown(self) -> None:
        """Commit what was handled, run the stop hooks, leave the group, close clients."""
        log.info("%s: stopping", self.agent)
        for task in self._timer_tasks():
            task.cancel()
        if self._consumer is not None and self._ctx is not None:
            async with self._lock:
                await self._commit()
        for fn in self._stops:
            try:
                if self._ctx is not None:
                    await self._ctx.batch.flush()
                await fn()
            except Exception:
                log.exception("%s: stop hook %s failed", self.agent, fn.__qualname__)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._send_changes()
        await self._durable()
        for client in (self._consumer, self._restorer, self._producer):
            if client is not None:
                await client.stop()
        log.info("%s: stopped", self.agent)

    def _timer_tasks(self) -> list[asyncio.Task[Any]]:
        return self._tasks[len(self._starts):]
