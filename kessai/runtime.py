"""Where agents meet topics: the agent context, split along its seams.

- :class:`Emitter` signs and sends (and writes audit events and dead letters);
- :class:`kessai.door.Door` admits every inbound record into the declared handlers;
- a *host* carries the worker's lifecycle: consumers, state tables, timers, start and stop.
  :class:`kessai.aiokafka_host.AiokafkaHost` is the default worker host (one aiokafka consumer
  loop); :class:`FaustHost` runs the same agents on a faust app (``KESSAI_HOST=faust``); the
  in-memory bus (:mod:`kessai.membus`) is the third, for tests that run whole flows without a
  broker.

An agent's ``register(ctx)`` only declares: handlers (``ctx.handle``), tables
(``ctx.table``), timers (``ctx.every``), start/stop hooks. It never touches faust or aiokafka.

Delivery is at-least-once: an offset is committed only after the handler ran, the records it
emitted and the table writes it made were acknowledged by the broker (:mod:`kessai.transport`),
so a crash re-delivers and the handlers' effects must be (and are) idempotent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust
from aiokafka.structs import TopicPartition

from kessai import envelope
from kessai.batch import Batch, current_batch
from kessai.clock import Clock, SystemClock
from kessai.door import Door, Inbound
from kessai.errors import ConfigError, KessaiError
from kessai.handlers import Handler, Routes, actor_kind
from kessai.keys import ActorKeys, Registry
from kessai.settings import Settings
from kessai.transport import KessaiApp
from schemas.v1 import AuditEvent, DeadLetter
from topics.catalogue import by_name

log = logging.getLogger("kessai")

DEAD_LETTERS = "kessai.dead-letters"
AUDIT = "kessai.audit"

__all__ = ["AUDIT", "DEAD_LETTERS", "AgentContext", "FaustHost", "Handler", "Inbound",
           "make_app"]

Send = Callable[[str, bytes, bytes, "int | None", list[tuple[str, bytes]]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


def make_app(agent: str, settings: Settings) -> KessaiApp:
    """A faust app for one agent type; its group id is shared by all workers of that type."""
    app = KessaiApp(
        f"kessai-{agent}",
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",  # tables rebuild from their changelog topics on start
        processing_guarantee="at_least_once",
        producer_acks=-1,
        # Short group timeouts: the embedded broker holds each JoinGroup for the whole
        # rebalance timeout, so faust's 60 s default would stall every worker start.
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=settings.waits.commit_interval_ms / 1000,
        broker_max_poll_records=settings.waits.max_poll_records,
        producer_linger=settings.waits.linger_ms / 1000,
        topic_partitions=4,
        topic_replication_factor=1,
        table_standby_replicas=1,
        web_enabled=False,
        datadir=str(settings.data_dir / "faust" / agent),
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        # Every kessai record is raw bytes (a msgpack envelope or msgpack table state); this
        # also makes table changelogs recover without faust's default JSON codec.
        key_serializer="raw",
        value_serializer="raw",
    )
    app.kessai_waits = settings.waits
    app.kessai_batches = []
    return app


class Host(Protocol):
    """A worker's lifecycle, as an agent sees it."""

    def send(self, topic: str, key: bytes, value: bytes, partition: int | None,
             headers: list[tuple[str, bytes]]) -> Awaitable[None]: ...

    def table(self, name: str, partitions: int) -> MutableMapping[bytes, bytes]: ...

    def active_partitions(self, topic: str) -> set[int]: ...

    def caught_up(self, topic: str, partition: int) -> bool: ...

    def every(self, seconds: float, fn: Hook) -> None: ...

    def at_start(self, fn: Hook) -> None: ...

    def at_stop(self, fn: Hook) -> None: ...

    def bind(self, ctx: AgentContext) -> None: ...


async def _flush_or_die(batch: Batch, agent: str) -> None:
    """Flush; if the stores cannot commit, end the worker. Nothing of the batch was announced
    or committed, so its supervisor's restart redelivers it — the same as a kill -9 — instead
    of an agent that silently stops consuming."""
    try:
        await batch.flush()
    except Exception as exc:
        log.critical("%s: a batch could not be made durable (%s); exiting so that its "
                     "records are redelivered", agent, type(exc).__name__)
        logging.shutdown()
        os._exit(75)


class FaustHost:
    """A faust app per worker process (``KESSAI_HOST=faust``)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._topics: dict[str, faust.TopicT] = {}
        self._handled: dict[tuple[str, int], int] = {}  # the last offset the door handled

    def topic(self, name: str) -> faust.TopicT:
        if name not in self._topics:
            spec = by_name(name)
            self._topics[name] = self.app.topic(
                name, key_type=bytes, value_type=bytes, key_serializer="raw",
                value_serializer="raw", partitions=spec.partitions)
        return self._topics[name]

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None,
                   headers: list[tuple[str, bytes]]) -> None:
        # Produced at once (``force``), not attached to the event: faust publishes attached
        # records only when it commits, so every hop would wait for the commit timer. Not
        # awaited either: the commit of the event's offset waits until the broker has
        # acknowledged every record sent so far (kessai.transport.durable_flush).
        await self.topic(topic).send(key=key, value=value, partition=partition,
                                     headers=headers, force=True)

    def table(self, name: str, partitions: int) -> MutableMapping[bytes, bytes]:
        return self.app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes,
                              schema=faust.Schema(key_type=bytes, value_type=bytes,
                                                  key_serializer="raw",
                                                  value_serializer="raw"))

    def active_partitions(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.app.assignor.assigned_actives()
                if tp.topic == topic}

    def caught_up(self, topic: str, partition: int) -> bool:
        # What the latest fetch said the log holds (highwater) has been fetched and handled.
        # aiokafka keeps both figures per partition; faust's consumer thread updates them.
        try:
            consumer = self.app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
            state = consumer._subscription.subscription.assignment.state_value(
                TopicPartition(topic, partition))
        except Exception:
            return False
        if state is None or state.highwater is None or not state.has_valid_position:
            return False
        handled = self._handled.get((topic, partition))
        return state.position >= state.highwater and (
            handled is None or handled + 1 >= state.highwater)

    def every(self, seconds: float, fn: Hook) -> None:
        self.app.timer(seconds, name=f"{fn.__module__}.{fn.__qualname__}")(fn)

    def at_start(self, fn: Hook) -> None:
        self.app.task(fn)

    def at_stop(self, fn: Hook) -> None:
        async def stop(sender: Any, **kwargs: Any) -> None:
            # What the batches hold is stored and sent before a store closes.
            for batch in getattr(self.app, "kessai_batches", ()):
                await batch.flush()
            await fn()

        stop.__qualname__ = f"stop_{fn.__qualname__}"
        self.app.on_before_shutdown.connect(stop)  # type: ignore[arg-type]  # mode's stubs

    def bind(self, ctx: AgentContext) -> None:
        """One faust agent per declared topic, every record through the door, in batches:
        the batch is flushed when no further record is at hand (so a lone record is never
        delayed), after ``max_poll_records`` records, and before every offset commit
        (:class:`kessai.transport.KessaiApp`)."""
        door = ctx.door
        batch = ctx.batch
        batches = getattr(self.app, "kessai_batches", None)
        if batches is not None and batch not in batches:
            batches.append(batch)
        for topic in ctx.routes.topics():
            async def consume(stream: faust.StreamT, topic: str = topic) -> None:
                queue = stream.channel.queue  # type: ignore[attr-defined]  # a faust Channel
                with batch.active():
                    async for event in stream.events():
                        m = event.message
                        raw = m.value if isinstance(m.value, bytes) else b""
                        await door.receive(m.topic, m.partition, m.offset, m.key, raw)
                        self._handled[(m.topic, m.partition)] = m.offset
                        if batch.handled_one() or queue.empty():
                            await _flush_or_die(batch, ctx.name)

            self.app.agent(self.topic(topic),
                           name=f"{ctx.name}-{topic.removeprefix('kessai.')}")(consume)


class Emitter:
    """Signs messages as one of the worker's identities and sends them."""

    def __init__(self, agent: str, keys: dict[str, ActorKeys], clock: Clock,
                 send: Send) -> None:
        self.agent = agent
        self.keys = keys
        self.clock = clock
        self._send_now = send
        self._may_produce: dict[tuple[str, str], bool] = {}

    def actor_keys(self, actor: str | None = None) -> ActorKeys:
        if actor is None:
            if len(self.keys) != 1:
                raise KessaiError(f"agent {self.agent} holds several identities; name one")
            return next(iter(self.keys.values()))
        return self.keys[actor]

    def check_producer(self, topic: str, actor: str) -> None:
        """The catalogue must name the actor's kind among the topic's producers."""
        allowed = self._may_produce.get((topic, actor))
        if allowed is None:
            allowed = actor_kind(actor) in by_name(topic).producers
            self._may_produce[(topic, actor)] = allowed
        if not allowed:
            raise ConfigError(f"{actor} may not produce to {topic} (topic catalogue)")

    async def emit(self, topic: str, msg: Any, correlation_id: str, *, key: str | None = None,
                   partition: int | None = None, sender: str | None = None,
                   trace_id: str | None = None) -> None:
        keys = self.actor_keys(sender)
        self.check_producer(topic, keys.actor)
        env = envelope.seal_envelope(msg, correlation_id, keys, self.clock, trace_id)
        record_key = (key if key is not None else correlation_id).encode()
        batch = current_batch()
        if batch is not None and batch.holding:  # announces writes not yet committed
            batch.hold(topic, record_key, envelope.encode(env), partition, env.headers())
        else:
            await self._send_now(topic, record_key, envelope.encode(env), partition,
                                 env.headers())


@dataclass
class AgentContext:
    """What an agent's ``register`` gets: its identities, keys, settings, clock, and the
    three seams — the host (lifecycle), the door (inbound), the emitter (outbound)."""

    name: str
    app: Any  # a faust app (wrapped in a FaustHost) or any Host
    settings: Settings
    registry: Registry
    keys: dict[str, ActorKeys]
    clock: Clock = field(default_factory=SystemClock)
    routes: Routes = field(init=False)
    host: Host = field(init=False)
    emitter: Emitter = field(init=False)
    door: Door = field(init=False)
    batch: Batch = field(init=False)

    def __post_init__(self) -> None:
        self.host = FaustHost(self.app) if isinstance(self.app, faust.App) else self.app
        self.routes = Routes(self.name)
        self.emitter = Emitter(self.name, self.keys, self.clock, self.host.send)
        self.batch = Batch(self.host.send, self.settings.waits.max_poll_records)
        self.door = Door(self.name, self.routes, self.registry, self.clock,
                         self.settings.max_message_age_ms, self.dead_letter)

    # -- declarations ------------------------------------------------------------------------
    def handle(self, topic: str, handler: Handler, *, types: Iterable[type],
               senders: Iterable[str], sender_is: str | None = None,
               name: str | None = None) -> None:
        """Declare ``handler`` for ``types`` on ``topic`` from the actor kinds ``senders``."""
        self.routes.add(topic, handler, types=types, senders=senders, sender_is=sender_is,
                        name=name)

    def table(self, name: str, partitions: int) -> MutableMapping[bytes, bytes]:
        """A changelog-backed bytes → bytes table (state that follows partitions)."""
        return self.host.table(name, partitions)

    def active_partitions(self, topic: str) -> set[int]:
        """Partitions of ``topic`` this worker actively owns (not its standby copies)."""
        return self.host.active_partitions(topic)

    def caught_up(self, topic: str, partition: int) -> bool:
        """Whether this worker has handled every record of ``topic[partition]`` the broker
        held at its latest fetch. A deadline that "nothing arrived in time" must wait for
        this: after a restart, a record sent in time may still be unread (issue 6 item 9)."""
        return self.host.caught_up(topic, partition)

    def every(self, seconds: float) -> Callable[[Hook], Hook]:
        def deco(fn: Hook) -> Hook:
            self.host.every(seconds, fn)
            return fn
        return deco

    def on_start(self, fn: Hook) -> Hook:
        self.host.at_start(fn)
        return fn

    def on_stop(self, fn: Hook) -> Hook:
        self.host.at_stop(fn)
        return fn

    def bind(self) -> None:
        """Check the declarations against the catalogue (refusing to start on a mismatch)
        and attach them to the host."""
        self.routes.check(self.name)
        self.host.bind(self)

    # -- outbound ----------------------------------------------------------------------------
    def actor_keys(self, actor: str | None = None) -> ActorKeys:
        return self.emitter.actor_keys(actor)

    async def emit(self, topic: str, msg: Any, correlation_id: str, *, key: str | None = None,
                   partition: int | None = None, sender: str | None = None,
                   trace_id: str | None = None) -> None:
        """Sign ``msg`` as ``sender`` and send it; inside a handler it leaves with the event
        ack and carries the handled record's trace."""
        await self.emitter.emit(topic, msg, correlation_id, key=key, partition=partition,
                                sender=sender, trace_id=trace_id)

    async def audit(self, kind: str, join_key: str, detail: str,
                    sender: str | None = None) -> None:
        log.warning("audit %s %s: %s", kind, join_key, detail)
        await self.emit(AUDIT, AuditEvent(kind, join_key, detail), join_key,
                        sender=sender or next(iter(self.keys)))

    async def dead_letter(self, reason: str, detail: str, topic: str, partition: int,
                          offset: int, original: bytes, key: bytes | None) -> None:
        log.warning("dead letter from %s[%d]@%d: %s (%s)", topic, partition, offset, reason,
                    detail)
        cid = key.decode("utf-8", "replace") if key else f"{topic}/{partition}/{offset}"
        await self.emit(DEAD_LETTERS,
                        DeadLetter(self.name, reason, detail, topic, partition, offset, original),
                        cid, sender=next(iter(self.keys)))

