"""The faust app kessai runs on, with the two things stock faust gets wrong for us.

1. **Fetch wait.** faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``, which is
   not a faust setting. The embedded broker does not answer a waiting fetch when data arrives
   (it re-checks after sleeping half the remaining wait), so that constant costs ≈ 360 ms per
   hop there; on Apache Kafka a long wait costs nothing. The wait is therefore a setting per
   broker kind (:class:`kessai.settings.Waits`), and it *adapts*: short while records flow,
   growing towards the idle wait once nothing has arrived for a while, so an idle worker does
   not keep the broker busy with empty fetches.
2. **Commit only what is durable.** Handlers run in batches (:mod:`kessai.batch`): before
   offsets are committed every batch is flushed (its stores commit, its held records are
   handed to the producer). faust's at-least-once commit flushes its producer buffer
   for at most 0.1 s and then commits anyway, so a table (changelog) write still in the buffer
   or in flight can be lost by a kill -9 while the offset of the event that made it is already
   committed — a settlement half "accepted" and then gone after the restart. Here every commit
   first drains the buffer completely and waits until the broker has acknowledged every record
   sent so far (``acks=all``).
3. **Nothing processed, start from the beginning.** faust drops a record it has fetched but
   not yet handed to its stream when a rebalance suspends the flow, and relies on the seek to
   the committed offset to read it again; but for a partition with no committed offset (or
   offset 0) that seek does nothing, so the consumer's position stays past the dropped record
   and it is never handled — a 2nd settlement request or an inquiry that arrived while a
   worker restarted, lost. After every assignment, such partitions are explicitly sought to
   their beginning: nothing committed means nothing processed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from kessai.settings import Waits

log = logging.getLogger("kessai.transport")


class AdaptiveWait:
    """The consumer's fetch wait: ``fetch_wait_busy_ms`` after a fetch that brought records;
    doubling per empty fetch up to ``fetch_wait_quiet_ms``, once ``idle_after_ms`` passed
    without a record up to ``fetch_wait_idle_ms``, and once ``deep_idle_after_ms`` passed up
    to ``fetch_wait_deep_ms`` (if set)."""

    def __init__(self, waits: Waits, clock: Any = time.monotonic) -> None:
        self.waits = waits
        self._clock = clock
        self._last_data = clock()
        self.current_ms = waits.fetch_wait_busy_ms

    def on_fetch(self, had_data: bool) -> int:
        """Record one fetch round's result; return the wait to use for the next one."""
        w = self.waits
        now = self._clock()
        if had_data:
            self._last_data = now
            self.current_ms = w.fetch_wait_busy_ms
        else:
            quiet_for_ms = (now - self._last_data) * 1000
            if w.fetch_wait_deep_ms and quiet_for_ms >= w.deep_idle_after_ms:
                cap = w.fetch_wait_deep_ms
            elif quiet_for_ms >= w.idle_after_ms:
                cap = w.fetch_wait_idle_ms
            else:
                cap = w.quiet_cap_ms
            self.current_ms = min(cap, max(self.current_ms * 2, 1))
        return self.current_ms


def adapt_fetcher(consumer: Any, waits: Waits) -> AdaptiveWait:
    """Wrap a started aiokafka consumer's fetcher so each fetch round adapts the wait (also
    used by the archiver's own consumer loop); returns the wait it follows."""
    fetcher = consumer._fetcher
    wait = AdaptiveWait(waits)
    fetcher._fetch_max_wait_ms = wait.current_ms
    original = fetcher._proc_fetch_request

    async def proc(assignment: Any, node_id: Any, request: Any) -> Any:
        had_data = await original(assignment, node_id, request)
        fetcher._fetch_max_wait_ms = wait.on_fetch(bool(had_data))
        return had_data

    fetcher._proc_fetch_request = proc
    return wait


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        waits: Waits = self.app.kessai_waits  # type: ignore[attr-defined]
        consumer._fetch_max_wait_ms = waits.fetch_wait_busy_ms
        consumer._max_poll_records = waits.max_poll_records
        start = consumer.start

        async def start_and_adapt() -> None:
            await start()
            if waits.fetch_wait_idle_ms > waits.fetch_wait_busy_ms:
                adapt_fetcher(consumer, waits)

        consumer.start = start_and_adapt
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # Which partitions this worker now owns: workers of one type split them
        # (`kessai up --replicas`); an operator (and the replicas test) reads it here.
        log.info("assigned %s", describe_assignment(
            tp for tp in self.assignment() if not self._is_changelog_tp(tp)))
        fresh = never_committed(self.assignment(), self._committed_offset,
                                self._is_changelog_tp)
        if fresh:
            await self._thread.seek_to_beginning(
                *(TopicPartition(tp.topic, tp.partition) for tp in fresh))
            for tp in fresh:
                self._read_offset[tp] = None
            log.info("no committed offset for %d stream partition(s): reading them from the "
                     "beginning", len(fresh))

    async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
        # The offsets were chosen among events already handled; what those handlers wrote or
        # emitted may still sit in a batch (kessai.batch): store it and send it first.
        for batch in getattr(self.app, "kessai_batches", ()):
            await batch.flush()
        await durable_flush(self.app.producer)
        return await super()._commit_offsets(offsets, start_new_transaction)


def describe_assignment(tps: Any) -> str:
    """``kessai.settlement.first[0,2] kessai.settlement.second[0,2]``: topics in name order."""
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(ps)))}]"
                    for t, ps in sorted(by_topic.items())) or "(nothing)"


def never_committed(assigned: Any, committed: Any, is_changelog: Any) -> list[Any]:
    """Assigned stream partitions whose committed offset is missing or 0, in order."""
    return sorted(tp for tp in assigned if not is_changelog(tp) and not committed.get(tp))


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


async def durable_flush(producer: Any) -> None:
    """Return only when every record handed to ``producer`` so far is acknowledged.

    Drains faust's buffer (table changelog writes wait there) into aiokafka, then waits for
    aiokafka's accumulator to deliver every batch; a failed send raises, so the caller's commit
    does not happen and the input is redelivered.
    """
    buffer = producer.buffer
    while not buffer.pending.empty():
        await buffer._send_pending(buffer.pending.get_nowait())
    inner = getattr(producer, "_producer", None)
    if inner is not None:
        await inner.flush()


class KessaiApp(faust.App):
    """A faust app whose consumer honours :class:`Waits` and commits only durable work."""

    kessai_waits: Waits
    kessai_batches: list[Any]  # kessai.batch.Batch of each agent context the worker hosts

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
