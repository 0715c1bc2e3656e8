"""The floors ``kessai bench`` compares the bus with, measured in the bench's own run.

**The flow of one payment** is counted, not assumed. The bench sends one *probe* purchase and
reads back every record it causes on every catalogued topic (those that carry its trace id):
each is one Ed25519 signature by its producer. Which agent workers read each topic — and so
verify each record in their door — is asked of the broker: the topics on which each agent's
consumer group (``kessai-<agent>``) has committed offsets. The records on the purchase's
critical path (the hops it waits for) are the longest causal chain from the purchase command
to the shop's final status, where record B follows record A when B's producer reads A's topic
and B was made no earlier than A. Where the broker cannot say who reads a topic, the
documented model :data:`FLOW` answers; it is also the whole flow when no probe ran (unit
tests), and the bench says whether the observed flow still matches it.

:data:`FLOW` (seed 003, VIA_TERMINAL result route, shop-assigned order id, a "signature" user
paying with a sealed card, the Fig. 5 order) was counted by reading the handlers
(``agents/terminal``, ``agents/shop``, ``agents/settlement``, ``agents/issuer``) and every
worker's subscriptions: the relay also reads wake-ups, payment results and order statuses, the
gateway also reads authorization results, and the terminal re-keys wake-ups and results by
session through ``kessai.terminal.sessions`` (so its state survives a kill -9).

:data:`EXTRAS` is the crypto beyond the envelopes, from the same handlers: the user's
signature over the 2nd request and its check, the HPKE seals of the card (to the settlement
server, then to the issuer) and their openings (the settlement server opens it twice: to check
it, then to authorize), and the HMAC result authenticators (made twice, checked twice).

**The crypto floor** performs those operations on the probe's own record bytes (or the model's)
in this process and times them: ``crypto`` counts only the ``kessai.crypto`` calls;
``envelope`` does the same work through ``kessai.envelope`` (``seal_envelope`` + ``encode`` per
record, ``open_record`` per reader: msgpack and schema decoding included).

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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from kessai import authenticators, crypto, envelope
from kessai.clock import SystemClock
from kessai.errors import KessaiError
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

FINAL_STATUSES = frozenset({"PAID", "NOT_PAID", "RESULT_REJECTED"})


@dataclass(frozen=True)
class Record:
    """One record of the purchase: signed by ``producer``, verified by each of ``readers``."""

    topic: str
    type: str
    producer: str  # agent kind (shop, terminal …; "operator" is the bench)
    readers: tuple[str, ...]
    on_path: bool  # a hop the purchase waits for (the 1st request travels alongside)
    raw: bytes = b""  # the record value, when observed or built
    created_ms: int = 0  # when its producer made it (observed records)


FLOW: tuple[Record, ...] = (
    Record("kessai.terminal.commands", "purchase-command", "operator", ("terminal",), True),
    Record("kessai.order-requests", "order-request", "terminal", ("shop",), True),
    Record("kessai.settlement.first", "settlement-first", "shop", ("settlement",), False),
    Record("kessai.wakeups", "payment-request", "shop", ("terminal",), True),
    Record("kessai.order-status", "order-status", "shop", ("relay",), False),  # AWAITING_PAYMENT
    Record("kessai.terminal.sessions", "payment-request", "terminal", ("terminal",), True),
    Record("kessai.settlement.second", "settlement-second", "terminal", ("settlement",), True),
    Record("kessai.authorizations", "authorization", "settlement", ("issuer",), True),
    Record("kessai.authorization-results", "authorization-result", "issuer",
           ("settlement", "gateway"), True),
    Record("kessai.payment-results", "payment-result", "settlement",
           ("terminal", "shop", "relay"), True),
    Record("kessai.terminal.sessions", "payment-result", "terminal", ("terminal",), True),
    Record("kessai.payment-results.relayed", "payment-result-relay", "terminal", ("shop",), True),
    Record("kessai.order-status", "order-status", "shop", ("relay",), True),  # PAID
)


def model_readers() -> dict[str, tuple[str, ...]]:
    """Who reads each topic of :data:`FLOW`, as documented."""
    return {r.topic: r.readers for r in FLOW}


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


def op_counts(flow: Sequence[Record] = FLOW) -> dict[str, int]:
    """Crypto operations of one payment: envelope signs and verifications plus the extras."""
    counts = Counter({"sign": len(flow), "verify": sum(len(r.readers) for r in flow)})
    counts.update(e.kind for e in EXTRAS)
    return {k: counts.get(k, 0) for k in ("sign", "verify", "seal", "open", "mac")}


def hops(flow: Sequence[Record]) -> int:
    return sum(1 for r in flow if r.on_path)


def differences(flow: Sequence[Record]) -> dict[str, list[str]]:
    """How ``flow`` differs from :data:`FLOW` (records and readers), for the report."""
    seen = Counter(f"{r.topic} {r.type}" for r in flow)
    model = Counter(f"{r.topic} {r.type}" for r in FLOW)
    documented = model_readers()
    readers = sorted({f"{r.topic}: {', '.join(r.readers)}" for r in flow
                      if r.topic in documented and set(r.readers) != set(documented[r.topic])})
    return {"missing": sorted((model - seen).elements()),
            "extra": sorted((seen - model).elements()), "readers_differ": readers}


# -- the observed flow -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    """A record as the probe read it back."""

    topic: str
    type: str
    key: str
    cid: str
    body: dict[str, Any]
    trace: str = ""
    sender: str = ""
    created_ms: int = 0
    raw: bytes = b""


def agent_kind(actor: str) -> str:
    """``shop-1`` → ``shop``, ``user:alice`` → ``user``; service actors are their own kind."""
    for sep in (":", "-"):
        head, found, _ = actor.partition(sep)
        if found:
            return head
    return actor


def critical_path(records: Sequence[Seen], readers: Mapping[str, Sequence[str]]) -> set[int]:
    """Indexes of the longest causal chain from the first record (the purchase command) to
    the shop's final status: B follows A when B's producer reads A's topic and B was made no
    earlier than A. Records are taken in the order given (the order they were made)."""
    if not records:
        return set()
    n = len(records)
    best: list[int] = [0] * n  # chain length ending here (0: not reachable from the command)
    prev: list[int] = [-1] * n
    best[0] = 1
    for i in range(1, n):
        for j in range(i):
            if best[j] and records[i].created_ms >= records[j].created_ms \
                    and agent_kind(records[i].sender) in readers.get(records[j].topic, ()) \
                    and best[j] + 1 > best[i]:
                best[i], prev[i] = best[j] + 1, j
    finals = [i for i, r in enumerate(records) if best[i] and r.type == "order-status"
              and r.body.get("status") in FINAL_STATUSES]
    if not finals:
        return set()
    i = max(finals, key=lambda k: best[k])
    path = set()
    while i >= 0:
        path.add(i)
        i = prev[i]
    return path


def observed_flow(records: Sequence[Seen],
                  broker_readers: Mapping[str, Sequence[str]] | None) -> tuple[list[Record],
                                                                               dict[str, str]]:
    """The probe's records as a flow: readers per topic from the broker where it knows them,
    else from :data:`FLOW`. Returns the flow and where each topic's readers came from."""
    ordered = sorted(records, key=lambda r: r.created_ms)  # stable: ties keep arrival order
    documented = model_readers()
    readers: dict[str, tuple[str, ...]] = {}
    source: dict[str, str] = {}
    for r in ordered:
        found = tuple(sorted((broker_readers or {}).get(r.topic, ())))
        if found:
            readers[r.topic], source[r.topic] = found, "broker"
        else:
            readers[r.topic] = documented.get(r.topic, ())
            source[r.topic] = "model" if r.topic in documented else "unknown"
    path = critical_path(ordered, readers)
    flow = [Record(r.topic, r.type, agent_kind(r.sender), readers[r.topic], i in path, r.raw,
                   r.created_ms) for i, r in enumerate(ordered)]
    return flow, source


async def broker_readers(bootstrap: str, agents: Sequence[str]) -> dict[str, list[str]] | None:
    """Topic → agents whose consumer group (``kessai-<agent>``) committed offsets on it, or
    None if the broker does not answer that."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from topics.catalogue import CATALOGUE

    tps = [TopicPartition(t.name, p) for t in CATALOGUE for p in range(t.partitions)]
    found: dict[str, list[str]] = {}
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await client.start()
        for agent in agents:
            offsets = await client.list_consumer_group_offsets(f"kessai-{agent}",
                                                               partitions=tps)
            for topic in sorted({tp.topic for tp, o in offsets.items() if o.offset >= 0}):
                found.setdefault(topic, []).append(agent)
    except Exception:  # an older or partial broker: fall back to the documented readers
        return None
    finally:
        await client.close()
    return found


# -- the model's messages, with throwaway keys ------------------------------------------------

ACTORS = ("operator", "terminal", "shop-1", "settlement", "issuer", "user:alice")
PRODUCER_ACTOR = {"shop": "shop-1"}


@dataclass
class World:
    """Throwaway keys, the extras' inputs, and the messages of :data:`FLOW` built with the
    real schema types."""

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
    second = replace(second, user_authenticator=crypto.sign(keys["user:alice"].signing_private,
                                                            world.second_unsigned))
    to_issuer = crypto.seal(sealing["issuer"][1], world.account,
                            authenticators.issuer_account_context(key))
    shop_tag = authenticators.shop_authenticator(world.mac_keys["shop"], "shop-1", order_id,
                                                 "APPROVED", amount)
    user_tag = authenticators.user_authenticator(world.mac_keys["user"], "shop-1", order_id,
                                                 "APPROVED", amount, session)
    delivery = Delivery("alice (dev user)", "1-1 Dev-cho, Minato-ku, Tokyo",
                        "alice@example.invalid")
    request = PaymentRequest("shop-1", order_id, session, "alice", content, amount)
    result = PaymentResult("shop-1", order_id, session, "user", "APPROVED", amount,
                           "VIA_TERMINAL", shop_tag, user_tag)
    world.messages = [
        PurchaseCommand(session, "alice", "shop-1", items),
        OrderRequest(session, "alice", "shop-1", items, delivery),
        FirstRequest("shop-1", order_id, order_id, amount, "VIA_TERMINAL", content,
                     user_ref="alice"),
        request,
        OrderStatus("shop-1", order_id, session, "AWAITING_PAYMENT"),
        request,  # re-keyed by session
        second,
        Authorization(key, amount, "payee:shop-1", to_issuer),
        AuthorizationResult(key, True, "approved", "A00042"),
        result,
        result,  # re-keyed by session
        ResultRelay("shop-1", order_id, "APPROVED", amount, shop_tag),
        OrderStatus("shop-1", order_id, session, "PAID", "APPROVED"),
    ]
    world.correlation = [session, session] + [key] * (len(FLOW) - 2)
    assert [m.TYPE for m in world.messages] == [r.type for r in FLOW], "FLOW and messages differ"
    return world


def model_flow(world: World) -> list[Record]:
    """:data:`FLOW` with each record's value: the model's messages, signed and encoded."""
    clock = SystemClock()
    return [replace(rec, raw=envelope.encode(envelope.seal_envelope(
        msg, cid, world.keys[PRODUCER_ACTOR.get(rec.producer, rec.producer)], clock)))
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


class _Signers:
    """A throwaway signing key per sender, and a registry that knows them."""

    def __init__(self) -> None:
        self.keys: dict[str, ActorKeys] = {}

    def of(self, actor: str) -> ActorKeys:
        if actor not in self.keys:
            sk = crypto.new_signing_key()
            self.keys[actor] = ActorKeys(actor, crypto.key_id(crypto.signing_public(sk)), sk)
        return self.keys[actor]

    def registry(self) -> Registry:
        return Registry({a: (k.kid, crypto.signing_public(k.signing_private))
                         for a, k in self.keys.items()}, {})


def crypto_ops(flow: Sequence[Record], world: World) -> list[Op]:
    """The ``kessai.crypto`` calls of one payment, in flow order, on each record's bytes:
    one sign by its producer, one verification per reader; then :data:`EXTRAS`."""
    signers = _Signers()
    ops: list[Op] = []
    for rec in flow:
        env = envelope.decode(rec.raw)
        k = signers.of(env.sender)
        signed = env.signed_bytes()
        sig = crypto.sign(k.signing_private, signed)
        public = crypto.signing_public(k.signing_private)
        ops.append(("sign", lambda k=k, b=signed: crypto.sign(k.signing_private, b)))
        ops += [("verify", lambda p=public, s=sig, b=signed: crypto.verify(p, s, b))
                for _ in rec.readers]
    return ops + _extra_ops(world)


def envelope_ops(flow: Sequence[Record], world: World) -> list[Op]:
    """The same payment through ``kessai.envelope``: each record's message signed and encoded
    once, decoded, verified and its body decoded once per reader; then :data:`EXTRAS`."""
    clock = SystemClock()
    signers = _Signers()
    prepared = []
    for rec in flow:
        env = envelope.decode(rec.raw)
        msg = envelope.body_of(env)
        k = signers.of(env.sender)
        raw = envelope.encode(envelope.seal_envelope(msg, env.correlation_id, k, clock))
        prepared.append((rec, msg, env.correlation_id, k, raw))
    registry = signers.registry()
    ops: list[Op] = []
    for rec, msg, cid, k, raw in prepared:
        ops.append(("sign", lambda m=msg, c=cid, k=k: envelope.encode(
            envelope.seal_envelope(m, c, k, clock))))
        ops += [("verify", lambda r=raw: envelope.open_record(
            r, registry, now_ms=clock.now_ms(), max_age_ms=900_000))
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


def measure_crypto(flow: Sequence[Record] | None = None, rounds: int = 200) -> CryptoFloor:
    """Time one payment's crypto in this process (median of ``rounds`` payments), on the
    records of ``flow`` (default: the model's)."""
    world = build_world()
    if flow is None or any(not r.raw for r in flow):
        flow = model_flow(world)
    try:
        ops = crypto_ops(flow, world)
        env_ops = envelope_ops(flow, world)
    except KessaiError:  # a record this version cannot decode: time the model instead
        flow = model_flow(world)
        ops, env_ops = crypto_ops(flow, world), envelope_ops(flow, world)
    got = Counter(kind for kind, _ in ops)
    assert dict(got) == {k: v for k, v in op_counts(flow).items() if v}, (got, op_counts(flow))
    return CryptoFloor(
        counts=op_counts(flow),
        crypto_s=_time_payment(ops, rounds),
        envelope_s=_time_payment(env_ops, rounds),
        op_us=_time_kinds(ops, max(50, rounds)),
        record_bytes=sum(len(r.raw) for r in flow) / len(flow),
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


@asynccontextmanager
async def _scratch(bootstrap: str, *, partitions: int, fetch_wait_ms: int, payload: bytes,
                   warm: int, max_poll_records: int | None = None,
                   linger_ms: int = 0) -> AsyncIterator[tuple[Any, Any, str, list[bytes]]]:
    """A scratch topic of ``partitions`` with a started producer and a consumer assigned to
    all of it, after ``warm`` records went through (connections and metadata first, so no
    figure pays for them); dropped afterwards. Yields (producer, consumer, topic, keys)."""
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
        keys = [f"shop-1/{uuid.uuid4().hex[:16]}".encode() for _ in range(1024)]
        for i in range(warm):
            await producer.send_and_wait(topic, payload, key=keys[i])
        got = 0
        while got < warm:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                got += len(batch)
        yield producer, consumer, topic, keys
    finally:
        await consumer.stop()
        await producer.stop()
        await _drop_topic(bootstrap, topic)


async def measure_raw(bootstrap: str, *, fetch_wait_ms: int, max_poll_records: int,
                      linger_ms: int, record_bytes: int, records: int, samples: int,
                      partitions: int = 4,
                      on_progress: Callable[[str, int, int], None] | None = None) -> RawFloor:
    """aiokafka alone, on a scratch topic of the same broker: R_raw and the one-hop latency."""
    payload = os.urandom(max(1, record_bytes))
    async with _scratch(bootstrap, partitions=partitions, fetch_wait_ms=fetch_wait_ms,
                        payload=payload, warm=partitions * 4,
                        max_poll_records=max_poll_records, linger_ms=linger_ms) as (
            producer, consumer, topic, keys):
        hop_ms = await _hops(producer, consumer, topic, payload, keys, samples, on_progress)
        msgs, produce = await _throughput(producer, consumer, topic, payload, keys, records,
                                          on_progress)
    return RawFloor(msgs, produce, records, len(payload), partitions, hop_ms, fetch_wait_ms)


def partitions_read(flow: Sequence[Record]) -> int:
    """How many partitions a worker on the purchase's path fetches, on average: each reader
    kind of an on-path record, the partitions of every topic the catalogue lets it read. An
    embedded-broker fetch costs per partition it names (docs/performance.md)."""
    from topics.catalogue import readable_by

    kinds = sorted({agent_kind(r) for x in flow if x.on_path for r in x.readers})
    counts = [sum(t.partitions for t in readable_by(k)) for k in kinds]
    counts = [c for c in counts if c]
    return round(statistics.fmean(counts)) if counts else 4


async def measure_hop(bootstrap: str, *, fetch_wait_ms: int, partitions: int,
                      record_bytes: int, samples: int,
                      on_progress: Callable[[str, int, int], None] | None = None
                      ) -> list[float]:
    """The one-hop latency to a consumer that fetches ``partitions`` partitions with a
    ``fetch_wait_ms`` wait: what a worker idle between its hops pays (its wait has grown to
    the quiet cap) on a broker that does not answer a waiting fetch early."""
    payload = os.urandom(max(1, record_bytes))
    async with _scratch(bootstrap, partitions=partitions, fetch_wait_ms=fetch_wait_ms,
                        payload=payload, warm=4) as (producer, consumer, topic, keys):
        return await _hops(producer, consumer, topic, payload, keys, samples, on_progress,
                           kind="quiet hop")


async def _hops(producer: Any, consumer: Any, topic: str, payload: bytes, keys: list[bytes],
                samples: int, on_progress: Callable[[str, int, int], None] | None,
                kind: str = "hop") -> list[float]:
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
                on_progress(kind, i + 1, samples)
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
