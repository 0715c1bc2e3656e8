"""Bad input end to end (DESIGN §3): every kind of bad record fed to a topic a real worker reads
lands on ``kessai.dead-letters`` with its reason, its source topic/partition/offset and its
exact bytes; the worker keeps running and the next purchase is approved.

Records are written with confluent-kafka (librdkafka), a client independent of the agents'
aiokafka, to an explicit partition; the offsets come from its delivery reports.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import KafkaError, Message, Producer

from kessai import authenticators, crypto, envelope, keys
from kessai.clock import FakeClock, SystemClock
from kessai.money import Money
from kessai.settings import Settings
from schemas.v1 import (
    DeadLetter,
    Delivery,
    FirstRequest,
    LineItem,
    OrderContent,
    OrderRequest,
)
from sim import devkeys
from tests.e2e.bus import purchase, read_all, run, wait_for
from tests.e2e.conftest import System
from topics.catalogue import by_name

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

DEAD_LETTERS = "kessai.dead-letters"
FIRST = "kessai.settlement.first"
ORDERS = "kessai.order-requests"
READER = {FIRST: "settlement", ORDERS: "shop"}  # the agent that consumes each topic
SHOP = "shop-1"
SIGNER = {FIRST: SHOP, ORDERS: "terminal"}  # a producer the catalogue names for each topic
FIG5 = OrderContent([LineItem("XXXX", "ピーナッツバター", 500, 1),
                     LineItem("YYYY", "グレープゼリー", 600, 1)], "JPY", 55, 1155)
TWO_HOURS_MS = 2 * 3600 * 1000
DEAD_LETTER_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Bad:
    """What to produce: one or more record values under one key; the last one is the bad one."""

    key: str
    values: list[bytes]


def _valid_message(topic: str) -> tuple[Any, str]:
    """A well-formed message for ``topic`` with a fresh correlation id, and its record key."""
    if topic == FIRST:
        order_id = "dl-" + uuid.uuid4().hex[:10]
        key = authenticators.join_key(SHOP, order_id)
        return FirstRequest(SHOP, order_id, order_id, Money(1155, "JPY"), "VIA_TERMINAL",
                            content=FIG5), key
    session = "sess-dl-" + uuid.uuid4().hex[:10]
    return OrderRequest(session, "alice", SHOP, [["XXXX", 1]],
                        Delivery("Alice", "1-1 Chiyoda, Tokyo", "alice@example.test")), session


def _resigned(env: envelope.Envelope, signer: keys.ActorKeys, **changes: Any) -> bytes:
    """``env`` with header fields changed and a fresh, valid signature by ``signer``."""
    changed = replace(env, **changes)
    return envelope.encode(replace(changed, signature=crypto.sign(
        signer.signing_private,
        envelope.signed_bytes(changed.version, changed.type, changed.id,
                              changed.correlation_id, changed.sender, changed.created_ms,
                              changed.kid, changed.body, changed.trace_id))))


def undecodable(s: Settings, topic: str, tmp: Path) -> Bad:
    # 0xc1 is the one byte msgpack never uses.
    return Bad("dl-garbage-" + uuid.uuid4().hex[:8], [b"\xc1not an envelope " + uuid.uuid4().bytes])


def flipped_signature_byte(s: Settings, topic: str, tmp: Path) -> Bad:
    msg, key = _valid_message(topic)
    env = envelope.seal_envelope(msg, key, keys.load_actor(s.keys_dir, SHOP), SystemClock())
    sig = bytearray(env.signature)
    sig[17] ^= 0x01
    return Bad(key, [envelope.encode(replace(env, signature=bytes(sig)))])


def foreign_key_as_unknown_actor(s: Settings, topic: str, tmp: Path) -> Bad:
    """Signed with a key of another key set, by an actor the registry does not know."""
    foreign = tmp / "foreign-keys"
    devkeys.init(foreign)
    impostor = replace(keys.load_actor(foreign, SHOP), actor="mallory")
    msg, key = _valid_message(topic)
    return Bad(key, [envelope.encode(envelope.seal_envelope(msg, key, impostor, SystemClock()))])


def foreign_key_as_known_actor(s: Settings, topic: str, tmp: Path) -> Bad:
    """Signed as "shop-1" with the "shop-1" key of another key set: not the registered key."""
    foreign = tmp / "foreign-keys"
    devkeys.init(foreign)
    msg, key = _valid_message(topic)
    impostor = keys.load_actor(foreign, SHOP)
    return Bad(key, [envelope.encode(envelope.seal_envelope(msg, key, impostor, SystemClock()))])


def unknown_type(s: Settings, topic: str, tmp: Path) -> Bad:
    shop = keys.load_actor(s.keys_dir, SHOP)
    msg, key = _valid_message(topic)
    env = envelope.seal_envelope(msg, key, shop, SystemClock())
    return Bad(key, [_resigned(env, shop, type="no-such-type")])


def unsupported_version(s: Settings, topic: str, tmp: Path) -> Bad:
    shop = keys.load_actor(s.keys_dir, SHOP)
    msg, key = _valid_message(topic)
    env = envelope.seal_envelope(msg, key, shop, SystemClock())
    return Bad(key, [_resigned(env, shop, version=99)])


def stale_timestamp(s: Settings, topic: str, tmp: Path) -> Bad:
    two_hours_ago = FakeClock(start_ms=SystemClock().now_ms() - TWO_HOURS_MS)
    msg, key = _valid_message(topic)
    env = envelope.seal_envelope(msg, key, keys.load_actor(s.keys_dir, SHOP), two_hours_ago)
    return Bad(key, [envelope.encode(env)])


def replayed_message_id(s: Settings, topic: str, tmp: Path) -> Bad:
    msg, key = _valid_message(topic)
    raw = envelope.encode(envelope.seal_envelope(
        msg, key, keys.load_actor(s.keys_dir, SIGNER[topic]), SystemClock()))
    return Bad(key, [raw, raw])  # the very same bytes at two offsets


KINDS: dict[str, tuple[Callable[[Settings, str, Path], Bad], str]] = {
    "undecodable_bytes": (undecodable, "undecodable"),
    "flipped_signature_byte": (flipped_signature_byte, "bad_signature"),
    "foreign_key_set_as_its_shop": (foreign_key_as_known_actor, "bad_signature"),
    "foreign_key_set_unknown_sender": (foreign_key_as_unknown_actor, "unknown_sender"),
    "unknown_message_type": (unknown_type, "unknown_type"),
    "unsupported_version": (unsupported_version, "unsupported_version"),
    "stale_timestamp": (stale_timestamp, "stale"),
    "replayed_message_id": (replayed_message_id, "replayed"),
}


def produce(bootstrap: str, topic: str, key: str, values: list[bytes]) -> tuple[int, list[int]]:
    """Write ``values`` in order to the partition the key belongs to; (partition, offsets)."""
    partitions = list(range(by_name(topic).partitions))
    partition = DefaultPartitioner()(key.encode(), partitions, partitions)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False,
                         "acks": "all", "max.in.flight.requests.per.connection": 1})
    reports: list[tuple[KafkaError | None, Message]] = []
    for value in values:
        producer.produce(topic, value=value, key=key.encode(), partition=partition,
                         on_delivery=lambda err, m: reports.append((err, m)))
        producer.flush(30)  # one at a time: the offsets are in production order
    assert len(reports) == len(values), "a delivery report is missing"
    for err, m in reports:
        assert err is None, f"delivery failed: {err}"
        assert m.partition() == partition
    return partition, [m.offset() for _, m in reports]


@pytest.mark.parametrize("topic", [FIRST, ORDERS])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_bad_record_is_dead_lettered_with_reason_and_bytes_and_the_agent_keeps_running(
        system: System, tmp_path: Path, kind: str, topic: str) -> None:
    s = system.settings
    agent = READER[topic]
    proc = system.workers[agent].proc
    assert proc is not None and proc.poll() is None
    make, reason = KINDS[kind]
    bad = make(s, topic, tmp_path)

    partition, offsets = await asyncio.to_thread(produce, s.bootstrap, topic, bad.key,
                                                 bad.values)

    def points_at(offset: int) -> Callable[[Any], bool]:
        return lambda m: (isinstance(m, DeadLetter) and m.topic == topic
                          and m.partition == partition and m.offset == offset)

    letter = await wait_for(s, DEAD_LETTERS, points_at(offsets[-1]),
                            timeout=DEAD_LETTER_TIMEOUT_S)
    assert letter.reason == reason, letter.detail
    assert letter.original == bad.values[-1]
    assert letter.agent == agent
    if len(offsets) > 1:  # the first copy of a replayed message was accepted, not dead-lettered
        earlier = [r for r in await read_all(s, DEAD_LETTERS)
                   if points_at(offsets[0])(_body(r.value))]
        assert earlier == []

    # The agent kept running: the same process, and a normal purchase goes through.
    assert system.workers[agent].proc is proc and proc.poll() is None
    started = time.monotonic()
    [p] = await run(s, purchase("alice"), timeout=60)
    assert p.outcome == "APPROVED", (p.outcome, time.monotonic() - started)
    assert proc.poll() is None


def _body(raw: bytes | None) -> Any:
    try:
        return envelope.body_of(envelope.decode(raw or b""))
    except Exception:
        return None
