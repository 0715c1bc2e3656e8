"""Replay against the session broker: signed, forged and garbage records, ranges and filters."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer

from kessai import crypto, envelope, keys
from kessai.cli import main
from kessai.clock import SystemClock
from kessai.envelope import Envelope
from kessai.errors import ConfigError
from kessai.money import Money
from kessai.replay import UNDECODABLE, ReplayRecord, read_range
from kessai.settings import Settings
from schemas.v1 import (
    AuditEvent,
    DeadLetter,
    LineItem,
    OrderContent,
    PaymentResult,
    SecondRequest,
)
from topics.catalogue import TopicSpec
from topics.provision import Report, broker_topics, create_all

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

TOPIC = "kessai.payment-results"
PAN = "4111111111111111"
GARBAGE = b"\xc1 not an envelope"


@dataclass(frozen=True)
class Written:
    """Records one test wrote: their correlation id, partition, offsets and timestamps."""

    cid: str
    partition: int
    offsets: list[int]
    timestamps: list[int]


def _messages(settings: Settings, cid: str) -> list[object]:
    content = OrderContent([LineItem("XXXX", "tea", 500, 2)], "JPY", 0, 1000)
    registry = keys.load_registry(settings.keys_dir)
    sealed = crypto.seal(registry.sealing["settlement"][1], PAN.encode(), cid.encode())
    return [
        AuditEvent("test", cid, "first record"),
        PaymentResult("shop-1", cid, "s-1", "user", "APPROVED", Money(1000, "JPY"),
                      "VIA_TERMINAL", shop_authenticator=b"\x01\x02"),
        SecondRequest("shop-1", cid, "s-1", "alice", content, Money(1000, "JPY"), "signature",
                      account_sealed=sealed),
        DeadLetter("shop", "undecodable", "test", TOPIC, 0, 7, b"\xde\xad"),
    ]


def _forged(env: Envelope) -> Envelope:
    return dataclasses.replace(env, signature=bytes([env.signature[0] ^ 1]) + env.signature[1:])


async def _write(settings: Settings, cid: str) -> Written:
    """Four signed records, one with a flipped signature byte, then one garbage record.

    Every record carries the key ``cid`` (so one partition) and a timestamp one second after
    the previous one, so time ranges can be checked without sleeping.
    """
    signer = keys.load_actor(settings.keys_dir, "settlement")
    envelopes = [envelope.seal_envelope(m, cid, signer, SystemClock())
                 for m in _messages(settings, cid)]
    envelopes.insert(2, _forged(envelopes[1]))
    base_ms = int(time.time() * 1000) - 60_000
    stamps = [base_ms + i * 1000 for i in range(len(envelopes) + 1)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                                enable_idempotence=False)
    await producer.start()
    try:
        sent = [await producer.send_and_wait(TOPIC, envelope.encode(env), key=cid.encode(),
                                             headers=env.headers(), timestamp_ms=ts)
                for env, ts in zip(envelopes, stamps, strict=False)]
    finally:
        await producer.stop()
    partition = sent[0].partition
    offsets = [md.offset for md in sent]

    delivered: list[int] = []
    raw = Producer({"bootstrap.servers": settings.bootstrap})
    raw.produce(TOPIC, value=GARBAGE, key=cid.encode(), partition=partition,
                timestamp=stamps[-1], headers=[(envelope.HEADER_CID, cid.encode())],
                on_delivery=lambda err, msg: delivered.append(msg.offset()))
    assert raw.flush(10) == 0
    return Written(cid, partition, offsets + delivered, stamps)


@pytest.fixture
async def written(settings: Settings, provisioned: list[Report]) -> Written:
    return await _write(settings, f"order-{uuid.uuid4().hex}")


async def _replay(settings: Settings, **kw: object) -> list[ReplayRecord]:
    return [r async for r in read_range(settings, [TOPIC], **kw)]  # type: ignore[arg-type]


async def test_replay_decodes_verifies_and_survives_garbage(
        settings: Settings, written: Written) -> None:
    records = await _replay(settings, correlation_id=written.cid)

    assert [r.offset for r in records] == written.offsets
    assert {r.partition for r in records} == {written.partition}
    audit, result, forged, second, dead, garbage = records
    assert second.body is not None and second.body["account_sealed"] != PAN.encode()
    assert dead.body is not None and dead.body["original"] == b"\xde\xad"
    assert [r.type for r in records] == ["audit-event", "payment-result", "payment-result",
                                         "settlement-second", "dead-letter", UNDECODABLE]
    assert [r.signature_valid for r in records] == [True, True, False, True, True, False]
    assert audit.sender == "settlement" and audit.key == written.cid.encode()
    assert result.body is not None and result.body["outcome"] == "APPROVED"
    assert forged.error is not None and forged.error.startswith("bad_signature")
    assert forged.body == result.body  # the body still decodes; only trust is withheld
    assert garbage.error is not None and garbage.error.startswith("undecodable")
    assert (garbage.message_id, garbage.sender, garbage.body) == (None, None, None)
    assert [r.timestamp_ms for r in records] == written.timestamps


async def test_replay_dict_renders_bytes_as_hex_and_keeps_secrets_sealed(
        settings: Settings, written: Written) -> None:
    rows = [r.to_dict() for r in await _replay(settings, correlation_id=written.cid)]

    text = json.dumps(rows)
    assert PAN not in text
    assert rows[1]["body"]["shop_authenticator"] == "0102"
    assert rows[4]["body"]["original"] == "dead"
    assert len(bytes.fromhex(rows[3]["body"]["account_sealed"])) > len(PAN)
    assert rows[1]["body"]["amount"] == [1000, "JPY"]


async def test_replay_offset_range(settings: Settings, written: Written) -> None:
    lo, hi = written.offsets[1], written.offsets[3]

    records = await _replay(settings, from_offset=lo, to_offset=hi, correlation_id=written.cid)

    assert [r.offset for r in records] == written.offsets[1:4]


async def test_replay_time_range_filters_on_record_timestamps(
        settings: Settings, written: Written) -> None:
    since, until = written.timestamps[2], written.timestamps[4]

    records = await _replay(settings, since_ms=since, until_ms=until,
                            correlation_id=written.cid)

    assert [r.offset for r in records] == written.offsets[2:5]


async def test_replay_correlation_id_filter(settings: Settings, written: Written) -> None:
    other = await _write(settings, f"order-{uuid.uuid4().hex}")

    mine = await _replay(settings, correlation_id=written.cid)
    theirs = await _replay(settings, correlation_id=other.cid)

    assert {r.correlation_id for r in mine} == {written.cid}
    assert {r.correlation_id for r in theirs} == {other.cid}
    assert len(mine) == len(theirs) == 6


def _cli(broker: str, keys_dir: Path, *args: str) -> int:
    return main(["replay", *args, "--bootstrap", broker, "--keys", str(keys_dir)])


def test_cli_replay_json_lines(broker: str, keys_dir: Path, written: Written,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli(broker, keys_dir, TOPIC, "--json", "--correlation-id", written.cid)

    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 0 and captured.err == ""
    assert [r["offset"] for r in rows] == written.offsets
    for row in rows:
        assert {"topic", "partition", "offset", "timestamp_ms", "key", "type", "message_id",
                "correlation_id", "sender", "signature_valid", "error", "body"} <= set(row)
        assert row["topic"] == TOPIC and row["correlation_id"] == written.cid
    assert [r["signature_valid"] for r in rows] == [True, True, False, True, True, False]
    assert rows[-1]["type"] == UNDECODABLE
    assert rows[1]["body"]["outcome"] == "APPROVED"


def test_cli_replay_table(broker: str, keys_dir: Path, written: Written,
                          capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli(broker, keys_dir, TOPIC, "--correlation-id", written.cid,
                "--from-offset", str(written.offsets[0]))

    header, *lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert header.split() == ["TOPIC", "PART", "OFFSET", "TYPE", "CORRELATION_ID", "SENDER",
                              "SIG", "BODY"]
    assert len(lines) == 6
    assert "✗" in lines[2] and "✓" in lines[1] and "outcome=APPROVED" in lines[1]
    assert UNDECODABLE in lines[5]
    assert PAN not in "\n".join(lines)


def test_cli_replay_unknown_topic_is_one_line_and_exit_2(
        broker: str, keys_dir: Path, provisioned: list[Report],
        unique_topic_prefix: Callable[[str], str], capsys: pytest.CaptureFixture[str]) -> None:
    name = f"{unique_topic_prefix('replay')}.nowhere"

    code = _cli(broker, keys_dir, name, "--json")

    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and name in captured.err


async def test_replay_does_not_create_the_unknown_topic(
        settings: Settings, unique_topic_prefix: Callable[[str], str]) -> None:
    name = f"{unique_topic_prefix('replay')}.nowhere"

    with pytest.raises(ConfigError, match="neither in the catalogue nor on the broker"):
        await _replay_topic(settings, name)

    assert name not in await broker_topics(settings)


async def _replay_topic(settings: Settings, name: str) -> list[ReplayRecord]:
    return [r async for r in read_range(settings, [name])]


def test_cli_replay_bad_range_is_exit_2(broker: str, keys_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli(broker, keys_dir, TOPIC, "--from-offset", "5", "--to-offset", "2")

    assert code == 2
    assert "--to-offset 2 is before --from-offset 5" in capsys.readouterr().err


async def test_replay_reads_to_the_end_of_a_multi_record_batch(
        settings: Settings, unique_topic_prefix: Callable[[str], str]) -> None:
    # Tansu lists the end of a partition as the last batch's base offset + 1; replay must
    # still read every record of that batch.
    topic = f"{unique_topic_prefix('batch')}.raw"
    await create_all(settings, [TopicSpec(topic, "none", 1, ("test",), ("test",), "batch")])
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                                enable_idempotence=False, linger_ms=50)
    await producer.start()
    try:
        sent = [await producer.send(topic, b"raw %d" % i, partition=0) for i in range(50)]
        await producer.flush()
        assert [(await f).offset for f in sent] == list(range(50))
    finally:
        await producer.stop()

    everything = [r async for r in read_range(settings, [topic])]
    tail = [r async for r in read_range(settings, [topic], from_offset=48)]

    assert [r.offset for r in everything] == list(range(50))
    assert all(r.type == UNDECODABLE and not r.signature_valid for r in everything)
    assert [r.offset for r in tail] == [48, 49]


async def _write_traced(settings: Settings, trace: str, topics: list[str]) -> None:
    signer = keys.load_actor(settings.keys_dir, "settlement")
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                                enable_idempotence=False)
    await producer.start()
    try:
        for i, topic in enumerate(topics):
            env = envelope.seal_envelope(AuditEvent("test", f"c{i}", "hop"), f"c{i}", signer,
                                         SystemClock(), trace)
            await producer.send_and_wait(topic, envelope.encode(env), key=f"c{i}".encode(),
                                         headers=env.headers())
            # Time order is all the trace view has across topics: records within one
            # millisecond have none, so each hop gets its own millisecond.
            await asyncio.sleep(0.002)
    finally:
        await producer.stop()


def test_cli_replay_trace_follows_one_purchase_across_topics(
        broker: str, keys_dir: Path, settings: Settings, provisioned: list[Report],
        capsys: pytest.CaptureFixture[str]) -> None:
    """`kessai replay --trace ID`: every catalogued topic, only that trace, in time order."""
    import asyncio

    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    asyncio.run(_write_traced(settings, other, ["kessai.audit"]))
    asyncio.run(_write_traced(settings, mine, ["kessai.audit", "kessai.dead-letters",
                                               "kessai.audit"]))
    code = main(["replay", "--trace", mine, "--json", "--bootstrap", broker,
                 "--keys", str(keys_dir)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [r["correlation_id"] for r in rows] == ["c0", "c1", "c2"]
    assert {r["trace_id"] for r in rows} == {mine}
    assert [r["topic"] for r in rows] == ["kessai.audit", "kessai.dead-letters", "kessai.audit"]


def test_cli_replay_without_topics_or_trace_is_exit_2(
        broker: str, keys_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--bootstrap", broker, "--keys", str(keys_dir)]) == 2
    assert "--trace" in capsys.readouterr().err
