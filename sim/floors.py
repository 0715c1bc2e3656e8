"""The floors ``kessai bench`` compares the bus with, measured in the bench's own run.

**The flow model.** :data:`FLOW` lists every record one purchase produces in the default flow
(seed 003, VIA_TERMINAL result route, shop-assigned order id, a "signature" user paying with a
sealed card, the Fig. 5 order), who signs it and which agent workers' doors decode and verify
it. It was counted by reading the handlers (``agents/terminal``, ``agents/shop``,
``agents/settlement``, ``agents/issuer``) and the topic subscriptions of every worker (``consume``
and ``app.agent`` calls: the relay also reads wake-ups, payment results and order statuses, the
gateway also reads authorization results), and the bench checks it against the records it
observes for one real purchase (``flow_check``) so a changed flow does not go unnoticed.
:data:`EXTRAS` lists the crypto beyond the envelopes: the user's signature over the 2nd request
and its verification, the HPKE seals of the card (to the settlement server, then to the issuer)
and their openings, and the HMAC result authenticators (made and checked).

**The crypto floor** performs exactly those operations with real message bytes, in this process,
and times them: ``crypto`` counts only the ``kessai.crypto`` calls; ``envelope`` is the same
work through ``kessai.envelope`` (``seal_envelope`` + ``encode`` per record, ``open_record``
per reader: msgpack and schema decoding included).

**The raw broker floor**: aiokafka alone on the same broker, records the size of a payment's
records: produce → consume throughput (``R_raw``), and the one-hop latency from a producer to a
consumer waiting with the fetch wait the workers use.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kessai import authenticators, crypto, envelope
from kessai.clock import SystemClock
from kessai.keys import ActorKeys, Registry
from schemas.v1 import (
    Authorization,
    AuthorizationResult,
    Delivery,
    FirstRequest,
    LineItem,
    OrderContent,
    OrderRequest,
    OrderStatus,
    PaymentRequest,
    PaymentResult,
    PurchaseCommand,
    ResultRelay,
    SecondRequest,
)


@dataclass(frozen=True)
class Record:
    """One record of the purchase: signed by ``producer``, verified by each of ``readers``."""

    topic: str
    type: str
    producer: str
    readers: tuple[str, ...]
    on_path: bool  # a hop the purchase waits for (the 1st request travels alongside)


FLOW: tuple[Record, ...] = (
    Record("kessai.terminal.commands", "purchase-command", "operator", ("terminal",), True),
    Record("kessai.order-requests", "order-request", "terminal", ("shop",), True),
    Record("kessai.settlement.first", "settlement-first", "shop", ("settlement",), False),
    Record("kessai.wakeups", "payment-request", "shop", ("terminal", "relay"), True),
    Record("kessai.order-status", "order-status", "shop", ("relay",), False),  # AWAITING_PAYMENT
    Record("kessai.settlement.second", "settlement-second", "terminal", ("settlement",), True),
    Record("kessai.authorizations", "authorization", "settlement", ("issuer",), True),
    Record("kessai.authorization-results", "authorization-result", "issuer",
           ("settlement", "gateway"), True),
    Record("kessai.payment-results", "payment-result", "settlement",
           ("terminal", "shop", "relay"), True),
    Record("kessai.payment-results.relayed", "payment-result-relay", "terminal", ("shop",), True),
    Record("kessai.order-status", "order-status", "shop", ("relay",), True),  # PAID
)


@dataclass(frozen=True)
class Extra:
    op: str  # kind:variant, e.g. "seal:settlement"; the kind is sign/verify/seal/open/mac
    by: str
    why: str

    @property
    def kind(self) -> str:
        return self.op.split(":")[0]


EXTRAS: tuple[Extra, ...] = (
    Extra("seal:settlement", "terminal", "card sealed to the settlement server (cl. 14)"),
    Extra("sign:user", "terminal", "user authenticator over the 2nd request (cl. 10)"),
    Extra("verify:user", "settlement", "user authenticator checked (check_second)"),
    Extra("open:settlement", "settlement", "sealed card opened to check it (check_second)"),
    Extra("open:settlement", "settlement", "sealed card opened again to authorize (account_for)"),
    Extra("seal:issuer", "settlement", "card sealed to the issuer"),
    Extra("open:issuer", "issuer", "card opened by the issuer"),
    Extra("mac:make", "settlement", "shop authenticator of the result (cl. 7)"),
    Extra("mac:make", "settlement", "user authenticator of the result (cl. 11)"),
    Extra("mac:check", "terminal", "user authenticator of the result checked"),
    Extra("mac:check", "shop", "shop authenticator of the relayed result checked"),
)


def op_counts() -> dict[str, int]:
    """Crypto operations of one payment: envelope signs and verifications plus the extras."""
    counts = Counter({"sign": len(FLOW), "verify": sum(len(r.readers) for r in FLOW)})
    counts.update(e.kind for e in EXTRAS)
    return {k: counts.get(k, 0) for k in ("sign", "verify", "seal", "open", "mac")}


def records_per_payment() -> int:
    return len(FLOW)


def hops_per_payment() -> int:
    return sum(1 for r in FLOW if r.on_path)


def model_topics() -> Counter[str]:
    return Counter(r.topic for r in FLOW)


# -- one payment's messages, with throwaway keys ---------------------------------------------

ACTORS = ("operator", "terminal", "shop-1", "settlement", "issuer", "user:alice")
PRODUCER_ACTOR = {"shop": "shop-1"}


@dataclass
class World:
    """Keys and the messages of one purchase, built with the real schema types."""

    keys: dict[str, ActorKeys]
    registry: Registry
    seal_private: dict[str, bytes]
    mac_keys: dict[str, bytes]
    messages: list[Any] = field(default_factory=list)  # one per FLOW record
    correlation: list[str] = field(default_factory=list)
    second_unsigned: bytes = b""
    account: bytes = b""
    join_key: str = ""


def build_world() -> World:
    keys: dict[str, ActorKeys] = {}
    signing: dict[str, tuple[str, bytes]] = {}
    for actor in ACTORS:
        sk = crypto.new_signing_key()
        pub = crypto.signing_public(sk)
        keys[actor] = ActorKeys(actor, crypto.key_id(pub), sk)
        signing[actor] = (crypto.key_id(pub), pub)
    seal_private = {a: crypto.new_seal_key() for a in ("settlement", "issuer")}
    sealing = {a: (crypto.key_id(crypto.seal_public(k)), crypto.seal_public(k))
               for a, k in seal_private.items()}
    world = World(keys, Registry(signing, sealing), seal_private,
                  {"shop": crypto.new_secret(), "user": crypto.new_secret()})

    session = "sess-" + uuid.uuid4().hex[:12]
    order_id = uuid.uuid4().hex[:16].upper()
    key = authenticators.join_key("shop-1", order_id)
    world.join_key = key
    items = [["XXXX", 1], ["YYYY", 1]]
    content = OrderContent([LineItem("XXXX", "ピーナッツバター", 500, 1),
                            LineItem("YYYY", "グレープゼリー", 600, 1)], "JPY", 55, 1155)
    amount = content.amount
    world.account = authenticators.pack_account("4111111111111111", "2031-12")
    sealed_card = crypto.seal(sealing["settlement"][1], world.account,
                              authenticators.account_context(key))
    second = SecondRequest("shop-1", order_id, session, "alice", content, amount, "signature",
                           account_sealed=sealed_card)
    world.second_unsigned = authenticators.second_signing_bytes(second)
    second = SecondRequest(**{**second.__dict__, "user_authenticator": crypto.sign(
        keys["user:alice"].signing_private, world.second_unsigned)})
    to_issuer = crypto.seal(sealing["issuer"][1], world.account,
                            authenticators.issuer_account_context(key))
    shop_tag = authenticators.shop_authenticator(world.mac_keys["shop"], "shop-1", order_id,
                                                 "APPROVED", amount)
    user_tag = authenticators.user_authenticator(world.mac_keys["user"], "shop-1", order_id,
                                                 "APPROVED", amount, session)
    delivery = Delivery("alice (dev user)", "1-1 Dev-cho, Minato-ku, Tokyo",
                        "alice@example.invalid")
    world.messages = [
        PurchaseCommand(session, "alice", "shop-1", items),
        OrderRequest(session, "alice", "shop-1", items, delivery),
        FirstRequest("shop-1", order_id, order_id, amount, "VIA_TERMINAL", content,
                     user_ref="alice"),
        PaymentRequest("shop-1", order_id, session, "alice", content, amount),
        OrderStatus("shop-1", order_id, session, "AWAITING_PAYMENT"),
        second,
        Authorization(key, amount, "payee:shop-1", to_issuer),
        AuthorizationResult(key, True, "approved", "A00042"),
        PaymentResult("shop-1", order_id, session, "user", "APPROVED", amount, "VIA_TERMINAL",
                      shop_tag, user_tag),
        ResultRelay("shop-1", order_id, "APPROVED", amount, shop_tag),
        OrderStatus("shop-1", order_id, session, "PAID", "APPROVED"),
    ]
    world.correlation = [session, session] + [key] * (len(FLOW) - 2)
    assert len(world.messages) == len(FLOW)
    assert [m.TYPE for m in world.messages] == [r.type for r in FLOW], "FLOW and messages differ"
    return world


def encoded_records(world: World) -> list[bytes]:
    """The record values of one purchase (signed envelopes), for sizes and the raw floor."""
    clock = SystemClock()
    return [envelope.encode(envelope.seal_envelope(
        msg, cid, world.keys[PRODUCER_ACTOR.get(rec.producer, rec.producer)], clock))
        for msg, cid, rec in zip(world.messages, world.correlation, FLOW, strict=True)]


Op = tuple[str, Callable[[], object]]


def _extra_ops(world: World) -> list[Op]:
    """The crypto of :data:`EXTRAS`, on bytes made once beforehand."""
    key = world.join_key
    user = world.keys["user:alice"].signing_private
    user_pub = world.registry.signing["user:alice"][1]
    user_sig = crypto.sign(user, world.second_unsigned)
    pub = {a: world.registry.sealing[a][1] for a in ("settlement", "issuer")}
    info = {"settlement": authenticators.account_context(key),
            "issuer": authenticators.issuer_account_context(key)}
    sealed = {a: crypto.seal(pub[a], world.account, info[a]) for a in pub}
    fields = b"shop-1\x00" + key.encode() + b"\x00APPROVED\x001155JPY"
    tag = crypto.mac(world.mac_keys["shop"], fields)
    table: dict[str, Callable[[], object]] = {
        "sign:user": lambda: crypto.sign(user, world.second_unsigned),
        "verify:user": lambda: crypto.verify(user_pub, user_sig, world.second_unsigned),
        "mac:make": lambda: crypto.mac(world.mac_keys["shop"], fields),
        "mac:check": lambda: crypto.mac_ok(world.mac_keys["shop"], fields, tag),
    }
    for a in pub:
        table[f"seal:{a}"] = lambda a=a: crypto.seal(pub[a], world.account, info[a])
        table[f"open:{a}"] = lambda a=a: crypto.open_sealed(world.seal_private[a], sealed[a],
                                                            info[a])
    return [(e.kind, table[e.op]) for e in EXTRAS]


def crypto_ops(world: World) -> list[Op]:
    """The ``kessai.crypto`` calls of one payment, in flow order, on precomputed bytes."""
    clock = SystemClock()
    ops: list[Op] = []
    for msg, cid, rec in zip(world.messages, world.correlation, FLOW, strict=True):
        k = world.keys[PRODUCER_ACTOR.get(rec.producer, rec.producer)]
        env = envelope.seal_envelope(msg, cid, k, clock)
        signed = env.signed_bytes()
        public = world.registry.signing[k.actor][1]
        ops.append(("sign", lambda k=k, b=signed: crypto.sign(k.signing_private, b)))
        ops += [("verify", lambda p=public, s=env.signature, b=signed: crypto.verify(p, s, b))
                for _ in rec.readers]
    return ops + _extra_ops(world)


def envelope_ops(world: World) -> list[Op]:
    """The same payment through ``kessai.envelope``: sign and encode each record, decode,
    verify and decode the body once per reader; the extras as in :func:`crypto_ops`."""
    clock = SystemClock()
    ops: list[Op] = []
    for msg, cid, rec in zip(world.messages, world.correlation, FLOW, strict=True):
        k = world.keys[PRODUCER_ACTOR.get(rec.producer, rec.producer)]
        raw = envelope.encode(envelope.seal_envelope(msg, cid, k, clock))
        ops.append(("sign", lambda m=msg, c=cid, k=k: envelope.encode(
            envelope.seal_envelope(m, c, k, clock))))
        ops += [("verify", lambda r=raw: envelope.open_record(
            r, world.registry, now_ms=clock.now_ms(), max_age_ms=900_000))
            for _ in rec.readers]
    return ops + _extra_ops(world)


@dataclass(frozen=True)
class CryptoFloor:
    counts: dict[str, int]
    crypto_s: float  # per payment, kessai.crypto calls only
    envelope_s: float  # per payment, through kessai.envelope (codec included)
    op_us: dict[str, float]  # median cost of one operation of each kind
    record_bytes: float  # mean size of the payment's record values

    def as_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "ms_per_payment": round(self.crypto_s * 1000, 4),
                "envelope_ms_per_payment": round(self.envelope_s * 1000, 4),
                "op_us": {k: round(v, 2) for k, v in self.op_us.items()},
                "record_bytes": round(self.record_bytes, 1)}


def _time_payment(ops: list[Op], rounds: int) -> float:
    """Median seconds of one pass over ``ops`` (after one untimed pass)."""
    for _, fn in ops:
        fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _, fn in ops:
            fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _time_kinds(ops: list[Op], reps: int) -> dict[str, float]:
    first: dict[str, Callable[[], object]] = {}
    for kind, fn in ops:
        first.setdefault(kind, fn)
    costs = {}
    for kind, fn in first.items():
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        costs[kind] = statistics.median(samples) * 1e6
    return costs


def measure_crypto(rounds: int = 200) -> CryptoFloor:
    """Time one payment's crypto in this process (median of ``rounds`` payments)."""
    world = build_world()
    ops = crypto_ops(world)
    got = Counter(kind for kind, _ in ops)
    assert dict(got) == {k: v for k, v in op_counts().items() if v}, (got, op_counts())
    sizes = [len(r) for r in encoded_records(world)]
    return CryptoFloor(
        counts=op_counts(),
        crypto_s=_time_payment(ops, rounds),
        envelope_s=_time_payment(envelope_ops(world), rounds),
        op_us=_time_kinds(ops, max(50, rounds)),
        record_bytes=sum(sizes) / len(sizes),
    )


# -- the raw broker floor ----------------------------------------------------------------------

@dataclass(frozen=True)
class RawFloor:
    msgs_per_s: float  # produce → consume, end to end
    produce_msgs_per_s: float  # until the producer had every ack
    records: int
    record_bytes: int
    partitions: int
    hop_ms: list[float]
    fetch_wait_ms: int


async def _scratch_topic(bootstrap: str, partitions: int) -> str:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    name = f"kessai.bench.raw-{uuid.uuid4().hex[:8]}"
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await client.start()
    try:
        brokers = len((await client.describe_cluster())["brokers"])
        await client.create_topics([NewTopic(name, partitions, max(1, min(3, brokers)))],
                                   timeout_ms=10_000)
    finally:
        await client.close()
    return name


async def _drop_topic(bootstrap: str, name: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await client.start()
        await client.delete_topics([name], timeout_ms=10_000)
    except Exception:  # a scratch topic left behind is harmless
        pass
    finally:
        await client.close()


async def measure_raw(bootstrap: str, *, fetch_wait_ms: int, max_poll_records: int,
                      linger_ms: int, record_bytes: int, records: int, samples: int,
                      partitions: int = 4,
                      on_progress: Callable[[str, int, int], None] | None = None) -> RawFloor:
    """aiokafka alone, on a scratch topic of the same broker: R_raw and the one-hop latency."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = await _scratch_topic(bootstrap, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=False, linger_ms=linger_ms)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms,
                                max_poll_records=max_poll_records,
                                auto_offset_reset="earliest")
    try:
        await producer.start()
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        payload = os.urandom(max(1, record_bytes))
        keys = [f"shop-1/{uuid.uuid4().hex[:16]}".encode() for _ in range(1024)]

        # Connections and metadata first, so neither figure pays for them.
        for i in range(partitions * 4):
            await producer.send_and_wait(topic, payload, key=keys[i])
        got = 0
        while got < partitions * 4:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                got += len(batch)

        hop_ms = await _hops(producer, consumer, topic, payload, keys, samples, on_progress)
        msgs, produce = await _throughput(producer, consumer, topic, payload, keys, records,
                                          on_progress)
    finally:
        await consumer.stop()
        await producer.stop()
        await _drop_topic(bootstrap, topic)
    return RawFloor(msgs, produce, records, len(payload), partitions, hop_ms, fetch_wait_ms)


async def _hops(producer: Any, consumer: Any, topic: str, payload: bytes, keys: list[bytes],
                samples: int, on_progress: Callable[[str, int, int], None] | None) -> list[float]:
    """One record at a time from the producer to the waiting consumer."""
    arrived: asyncio.Queue[float] = asyncio.Queue()
    stop = False

    async def consume() -> None:
        while not stop:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for recs in batch.values():
                for _ in recs:
                    arrived.put_nowait(now)

    reader = asyncio.get_running_loop().create_task(consume())
    hops = []
    try:
        await asyncio.sleep(0.05)  # let the consumer's first fetch start waiting
        for i in range(samples):
            t0 = time.perf_counter()
            await producer.send(topic, payload, key=keys[i % len(keys)])
            t1 = await asyncio.wait_for(arrived.get(), 10)
            hops.append((t1 - t0) * 1000)
            if on_progress:
                on_progress("hop", i + 1, samples)
            # Unaligned gaps, so the samples do not ride on the fetch cycle's phase.
            await asyncio.sleep(0.001 + (i % 7) * 0.0007)
    finally:
        stop = True
        await reader
    return hops


async def _throughput(producer: Any, consumer: Any, topic: str, payload: bytes,
                      keys: list[bytes], records: int,
                      on_progress: Callable[[str, int, int], None] | None) -> tuple[float, float]:
    """``records`` sent without waiting for each ack; time until the consumer has them all."""
    got = 0
    done = asyncio.get_running_loop().create_future()

    async def consume() -> None:
        nonlocal got
        while got < records:
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                got += len(recs)
            if on_progress:
                on_progress("raw", min(got, records), records)
        done.set_result(time.perf_counter())

    reader = asyncio.get_running_loop().create_task(consume())
    t0 = time.perf_counter()
    futures = []
    for i in range(records):
        futures.append(await producer.send(topic, payload, key=keys[i % len(keys)]))
    await asyncio.gather(*futures)
    produced = time.perf_counter()
    end = await asyncio.wait_for(done, 120)
    await reader
    return records / (end - t0), records / (produced - t0)
