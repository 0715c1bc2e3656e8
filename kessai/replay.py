"""Replay: read any range of topics, decode and verify every record, never stop at a bad one.

Reading uses a plain consumer with no group (nothing is committed, no agent's offsets move),
assigned to every partition by hand. The end of the range is fixed when reading starts, so a
replay of a busy topic terminates. Time ranges filter on record timestamps while reading:
``offsets_for_times`` is not reliable on the embedded broker (DESIGN §5). With ``--archive``
the records come from the audit archive instead (:mod:`kessai.archive`, scanned by its own time
index), so a range survives the broker's memory and retention.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from kessai import archive, envelope
from kessai.errors import BrokerUnavailable, ConfigError, KessaiError
from kessai.keys import Registry, load_registry
from kessai.money import Money
from kessai.settings import Settings
from schemas.codec import to_body
from topics.catalogue import CATALOGUE
from topics.provision import broker_topics

UNDECODABLE = "<undecodable>"
IDLE_TIMEOUT_S = 15.0  # no record for this long while the captured end is not reached
PROGRESS_MIN_RECORDS = 2_000  # smaller replays finish before a progress line would help

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ReplayRecord:
    """One record as replay sees it. ``body`` holds the decoded message fields (bytes kept)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    type: str
    message_id: str | None
    correlation_id: str | None
    sender: str | None
    signature_valid: bool
    error: str | None = None
    body: dict[str, Any] | None = None
    message: Any = field(default=None, repr=False, compare=False)
    trace_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: bytes become hex, so sealed secrets stay sealed."""
        return {
            "topic": self.topic, "partition": self.partition, "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "key": None if self.key is None else self.key.decode("utf-8", "replace"),
            "type": self.type, "message_id": self.message_id,
            "correlation_id": self.correlation_id, "sender": self.sender,
            "signature_valid": self.signature_valid, "error": self.error,
            "trace_id": self.trace_id, "body": jsonable(self.body),
        }


def jsonable(value: Any) -> Any:
    """``value`` with bytes as hex strings and tuples as lists, ready for json.dumps."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return None


def inspect_record(topic: str, partition: int, offset: int, timestamp_ms: int,
                   key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]],
                   registry: Registry) -> ReplayRecord:
    """Decode and verify one record. Never raises for bad content: it is reported instead."""
    where = (topic, partition, offset, timestamp_ms, key)
    try:
        env = envelope.decode(value if value is not None else b"")
    except KessaiError as exc:
        detail = "no value (tombstone)" if value is None else str(exc)
        return ReplayRecord(*where, UNDECODABLE, None, _header(headers, envelope.HEADER_CID),
                            None, False, f"{exc.code}: {detail}",
                            trace_id=_header(headers, envelope.HEADER_TRACE))
    errors = []
    try:
        envelope.verify(env, registry)
        valid = True
    except KessaiError as exc:
        valid = False
        errors.append(f"{exc.code}: {exc}")
    body: dict[str, Any] | None = None
    message = None
    try:
        message = envelope.body_of(env)
        body = to_body(message)
    except KessaiError as exc:
        errors.append(f"{exc.code}: {exc}")
        body = _raw_body(env.body)
    except (TypeError, ValueError) as exc:  # a body the codec did not foresee: report, go on
        errors.append(f"schema: {exc}")
        body = _raw_body(env.body)
    return ReplayRecord(*where, env.type, env.id, env.correlation_id, env.sender, valid,
                        "; ".join(errors) or None, body, message, env.trace_id or None)


def _raw_body(raw: bytes) -> dict[str, Any] | None:
    # A body of an unknown type or version is still shown as far as msgpack can read it.
    try:
        body = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception:
        return None
    return body if isinstance(body, dict) else None


def _check_range(from_offset: int | None, to_offset: int | None, since_ms: int | None,
                 until_ms: int | None) -> None:
    if from_offset is not None and from_offset < 0:
        raise ConfigError(f"--from-offset must be 0 or more, got {from_offset}")
    if to_offset is not None and to_offset < 0:
        raise ConfigError(f"--to-offset must be 0 or more, got {to_offset}")
    if from_offset is not None and to_offset is not None and to_offset < from_offset:
        raise ConfigError(f"--to-offset {to_offset} is before --from-offset {from_offset}")
    if since_ms is not None and until_ms is not None and until_ms < since_ms:
        raise ConfigError("--until is before --since")


async def _resolve(settings: Settings, topics: Sequence[str]) -> dict[str, int]:
    """Partition counts of the requested topics that exist; unknown names are a ConfigError."""
    on_broker = await broker_topics(settings)
    catalogued = {t.name for t in CATALOGUE}
    for name in topics:
        if name not in on_broker and name not in catalogued:
            raise ConfigError(f"topic {name!r} is neither in the catalogue nor on the broker "
                              "(see 'kessai topics list')")
    # A catalogued topic not created yet simply holds no records; it is not asked about,
    # since a metadata request for it could create it with the wrong partition count.
    return {name: on_broker[name] for name in dict.fromkeys(topics) if name in on_broker}


async def read_range(settings: Settings, topics: Sequence[str], *,
                     from_offset: int | None = None, to_offset: int | None = None,
                     since_ms: int | None = None, until_ms: int | None = None,
                     correlation_id: str | None = None, trace_id: str | None = None,
                     progress: Progress | None = None) -> AsyncIterator[ReplayRecord]:
    """Yield the records of ``topics`` in the range, decoded and signature-checked.

    Every partition is read from its beginning (or ``from_offset``) up to the end captured
    when reading starts, or up to and including ``to_offset``. ``since_ms``/``until_ms``
    (inclusive) filter on record timestamps; ``correlation_id`` on the envelope's correlation
    id (the header's, for a record that does not decode); ``trace_id`` on the purchase's trace
    (every hop of one purchase, across flows). Records of one partition come in
    offset order. ``progress(read, total)`` is called after each fetched batch.
    Raises ConfigError for an unknown topic or a bad range, BrokerUnavailable if the broker
    does not answer.
    """
    _check_range(from_offset, to_offset, since_ms, until_ms)
    registry = load_registry(settings.keys_dir)
    counts = await _resolve(settings, topics)
    tps = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
    if not tps:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None,
                                client_id=f"{settings.client_id_prefix}-replay",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        await consumer.start()
        consumer.assign(tps)
        first = await consumer.beginning_offsets(tps)
        end = await _log_ends(consumer, first, await consumer.end_offsets(tps))
    except KafkaError as exc:
        await consumer.stop()
        raise BrokerUnavailable(f"cannot read from {settings.bootstrap}: {exc}") from None
    try:
        async for record in _read(consumer, tps, first, end, from_offset, to_offset, registry,
                                  progress):
            if since_ms is not None and record.timestamp_ms < since_ms:
                continue
            if until_ms is not None and record.timestamp_ms > until_ms:
                continue
            if correlation_id is not None and record.correlation_id != correlation_id:
                continue
            if trace_id is not None and record.trace_id != trace_id:
                continue
            yield record
    except KafkaError as exc:
        raise BrokerUnavailable(f"lost the broker at {settings.bootstrap}: {exc}") from None
    finally:
        await consumer.stop()


async def read_archive(path: Path, registry: Registry, topics: Sequence[str], *,
                       from_offset: int | None = None, to_offset: int | None = None,
                       since_ms: int | None = None, until_ms: int | None = None,
                       correlation_id: str | None = None, trace_id: str | None = None
                       ) -> AsyncIterator[ReplayRecord]:
    """As :func:`read_range`, from an archive file (every catalogued topic when ``topics`` is
    empty). Raises ConfigError for a missing or foreign file or a bad range."""
    _check_range(from_offset, to_offset, since_ms, until_ms)
    for topic, partition, offset, ts, key, headers, value in archive.scan(
            path, topics, since_ms, until_ms):
        if (from_offset is not None and offset < from_offset) or \
                (to_offset is not None and offset > to_offset):
            continue
        record = inspect_record(topic, partition, offset, ts, key, value, headers, registry)
        if correlation_id is not None and record.correlation_id != correlation_id:
            continue
        if trace_id is not None and record.trace_id != trace_id:
            continue
        yield record


async def _log_ends(consumer: AIOKafkaConsumer, first: dict[TopicPartition, int],
                    listed: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The true end offset of each partition, from a fetch's high watermark.

    Tansu answers ListOffsets(latest) with the base offset of the last batch plus one, short
    of the end when that batch holds several records; a fetch of the last listed offset
    reports the real high watermark. On Kafka both agree.
    """
    ends = dict(listed)
    pending = {tp for tp, end in listed.items() if end > first[tp]}
    for tp in pending:
        consumer.seek(tp, listed[tp] - 1)  # always a valid offset, so never out of range
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    while pending:
        await consumer.getmany(*pending, timeout_ms=200)  # only the high watermarks matter
        for tp in list(pending):
            highwater = consumer.highwater(tp)
            if highwater is not None:
                ends[tp] = max(listed[tp], highwater)
                pending.discard(tp)
        if pending and time.monotonic() > deadline:
            raise BrokerUnavailable(f"the broker sent no fetch response for "
                                    f"{', '.join(sorted(tp.topic for tp in pending))}")
    return ends


async def _read(consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                first: dict[TopicPartition, int], end: dict[TopicPartition, int],
                from_offset: int | None, to_offset: int | None, registry: Registry,
                progress: Progress | None) -> AsyncIterator[ReplayRecord]:
    stop = {tp: end[tp] if to_offset is None else min(end[tp], to_offset + 1) for tp in tps}
    active = []
    for tp in tps:
        start = max(first[tp], from_offset or 0)
        if start < stop[tp]:
            consumer.seek(tp, start)
            active.append(tp)
        else:
            consumer.pause(tp)
    total = sum(stop[tp] - max(first[tp], from_offset or 0) for tp in active)
    done = 0
    last_record = time.monotonic()
    while active:
        batch = await consumer.getmany(*active, timeout_ms=500, max_records=500)
        for tp, messages in batch.items():
            for m in messages:
                if m.offset >= stop[tp]:
                    break
                done += 1
                yield inspect_record(m.topic, m.partition, m.offset, m.timestamp, m.key,
                                     m.value, m.headers, registry)
        if batch:
            last_record = time.monotonic()
        elif time.monotonic() - last_record > IDLE_TIMEOUT_S:
            raise BrokerUnavailable(
                f"no records arrived for {IDLE_TIMEOUT_S:.0f}s before the end of "
                f"{', '.join(f'{tp.topic}[{tp.partition}]' for tp in active)}")
        # Positions, not the last offsets seen: compaction and control records leave gaps.
        for tp in list(active):
            if await consumer.position(tp) >= stop[tp]:
                consumer.pause(tp)
                active.remove(tp)
        if progress is not None:
            progress(done, total)


# Fields that say most about a message come first in the table's short body summary.
_SUMMARY_FIRST = ("outcome", "status", "approved", "reason", "amount", "kind", "detail")


def _summary(record: ReplayRecord, width: int = 60) -> str:
    if record.error and record.body is None:
        return record.error[:width]
    values = vars(record.message) if record.message is not None else record.body or {}
    ordered = [n for n in _SUMMARY_FIRST if n in values]
    ordered += [n for n in values if n not in _SUMMARY_FIRST]
    fields = []
    for name in ordered:
        value = values[name]
        if value == record.correlation_id:
            continue  # already its own column
        if isinstance(value, (bytes, bytearray)):
            if value:
                fields.append(f"{name}=<{len(value)} bytes>")
        elif isinstance(value, (str, int, float, Money)) and value != "":
            fields.append(f"{name}={value}")
    text = " ".join(fields)
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(records: Sequence[ReplayRecord]) -> str:
    header = ("TOPIC", "PART", "OFFSET", "TYPE", "CORRELATION_ID", "SENDER", "SIG", "BODY")
    rows = [(r.topic, str(r.partition), str(r.offset), r.type, r.correlation_id or "-",
             r.sender or "-", "✓" if r.signature_valid else "✗", _summary(r)) for r in records]
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in (header, *rows))


def _stderr_progress() -> Progress | None:
    if not sys.stderr.isatty():
        return None

    def report(done: int, total: int) -> None:
        if total >= PROGRESS_MIN_RECORDS:
            sys.stderr.write(f"\rreplay: {done}/{total} records ({100 * done // total}%)")
            sys.stderr.flush()

    return report


async def _sorted_by_time(records: list[ReplayRecord]) -> AsyncIterator[ReplayRecord]:
    for record in sorted(records, key=lambda r: (r.timestamp_ms, r.topic, r.partition,
                                                 r.offset)):
        yield record


def _seconds_to_ms(value: float | None) -> int | None:
    return None if value is None else int(value * 1000)


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``kessai replay TOPIC... [range and filters] [--json]``: JSON lines or a table."""
    progress = _stderr_progress()

    topics = args.topics
    from_archive = getattr(args, "archive", None)
    if not topics:
        if from_archive is not None:
            topics = []  # every archived topic
        elif args.trace is None:
            raise ConfigError("name at least one TOPIC, or --trace ID to follow one purchase "
                              "across every catalogued topic")
        topics = [t.name for t in CATALOGUE]

    async def replay() -> None:
        table: list[ReplayRecord] = []
        records: AsyncIterator[ReplayRecord]
        if from_archive is not None:
            records = read_archive(
                from_archive, load_registry(settings.keys_dir), topics,
                from_offset=args.from_offset, to_offset=args.to_offset,
                since_ms=_seconds_to_ms(args.since), until_ms=_seconds_to_ms(args.until),
                correlation_id=args.correlation_id, trace_id=args.trace)
        else:
            records = read_range(
                settings, topics, from_offset=args.from_offset, to_offset=args.to_offset,
                since_ms=_seconds_to_ms(args.since), until_ms=_seconds_to_ms(args.until),
                correlation_id=args.correlation_id, trace_id=args.trace, progress=progress)
        if args.trace is not None:  # one purchase: its hops in the order they happened
            records = _sorted_by_time([r async for r in records])
        async for record in records:
            if args.json:
                print(json.dumps(record.to_dict(), ensure_ascii=False))
            else:
                table.append(record)
        if progress is not None:
            sys.stderr.write("\r\033[K")  # clear the progress line
        if not args.json:
            print(_table(table) if table else "(no records in this range)")

    try:
        asyncio.run(replay())
    except BrokenPipeError:
        # The reader (``| head``) has gone; silence the final flush of stdout too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
