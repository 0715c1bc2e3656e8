"""Where agents meet topics: a faust app per worker, the verified inbound door, the emitter.

Everything faust-specific lives here and in the agents' ``register`` functions; message types,
codec, crypto and stores know nothing of faust.

Delivery is at-least-once (faust ``at_least_once``): an offset is committed only after the
handler ran and the records it emitted were attached to the event, so a crash re-delivers and
the handlers' effects must be (and are) idempotent.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import faust

from kessai import envelope
from kessai.clock import Clock, SystemClock
from kessai.errors import KessaiError, ReplayedMessage
from kessai.keys import ActorKeys, Registry
from kessai.settings import Settings
from schemas.v1 import AuditEvent, DeadLetter
from topics.catalogue import by_name

log = logging.getLogger("kessai")

DEAD_LETTERS = "kessai.dead-letters"
AUDIT = "kessai.audit"


def make_app(agent: str, settings: Settings) -> faust.App:
    """A faust app for one agent type; its group id is shared by all workers of that type."""
    return faust.App(
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
        broker_commit_interval=0.5,
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


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    spec = by_name(name)
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=spec.partitions)


@dataclass
class Inbound:
    """One accepted record: the verified envelope, its message, and where it came from."""

    opened: envelope.Opened
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes = b""  # the record value exactly as it arrived (for dead letters)

    @property
    def message(self) -> Any:
        return self.opened.message

    @property
    def sender(self) -> str:
        return self.opened.envelope.sender


@dataclass
class AgentContext:
    name: str
    app: faust.App
    settings: Settings
    registry: Registry
    keys: dict[str, ActorKeys]
    clock: Clock = field(default_factory=SystemClock)
    _topics: dict[str, faust.TopicT] = field(default_factory=dict)
    _seen: collections.OrderedDict[str, tuple[str, int, int]] = field(
        default_factory=collections.OrderedDict)

    def topic(self, name: str) -> faust.TopicT:
        if name not in self._topics:
            self._topics[name] = raw_topic(self.app, name)
        return self._topics[name]

    def actor_keys(self, actor: str | None = None) -> ActorKeys:
        if actor is None:
            if len(self.keys) != 1:
                raise KessaiError(f"agent {self.name} holds several identities; name one")
            return next(iter(self.keys.values()))
        return self.keys[actor]

    async def emit(self, topic: str, msg: Any, correlation_id: str, *, key: str | None = None,
                   partition: int | None = None, sender: str | None = None) -> None:
        """Sign ``msg`` as ``sender`` and send it; inside a stream it leaves with the event ack."""
        env = envelope.seal_envelope(msg, correlation_id, self.actor_keys(sender), self.clock)
        await self.topic(topic).send(
            key=(key if key is not None else correlation_id).encode(),
            value=envelope.encode(env), partition=partition, headers=env.headers())

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

    def _check_replay(self, msg_id: str, where: tuple[str, int, int]) -> None:
        # A redelivery after a crash comes from the same offset: process it (idempotently).
        # The same message id at another offset is a replay.
        seen = self._seen.get(msg_id)
        if seen is not None and seen != where:
            raise ReplayedMessage(
                f"message id {msg_id} already seen at {seen[0]}[{seen[1]}]@{seen[2]}")
        self._seen[msg_id] = where
        self._seen.move_to_end(msg_id)
        while len(self._seen) > 200_000:
            self._seen.popitem(last=False)

    async def accept(self, event: faust.types.EventT) -> Inbound | None:
        """decode → verify → freshness → replay check; bad records go to the dead letters."""
        m = event.message
        raw = m.value if isinstance(m.value, bytes) else b""
        try:
            opened = envelope.open_record(raw, self.registry, now_ms=self.clock.now_ms(),
                                          max_age_ms=self.settings.max_message_age_ms)
            self._check_replay(opened.envelope.id, (m.topic, m.partition, m.offset))
        except KessaiError as exc:
            await self.dead_letter(exc.code, str(exc), m.topic, m.partition, m.offset, raw, m.key)
            return None
        return Inbound(opened, m.topic, m.partition, m.offset, m.key, raw)

    async def inbound(self, stream: faust.StreamT) -> AsyncIterator[Inbound]:
        async for event in stream.events():
            accepted = await self.accept(event)
            if accepted is not None:
                yield accepted


Handler = Callable[[Inbound], Awaitable[None]]


async def run_safely(ctx: AgentContext, inbound: Inbound, handler: Handler) -> None:
    """Run ``handler``; if it fails, dead-letter the record instead of stopping the worker.

    Only kessai errors (whose messages never hold secrets) are quoted; others by class name,
    and without a traceback, since a third-party exception text could quote a secret.
    """
    try:
        await handler(inbound)
    except Exception as exc:
        log.error("%s: handling %s from %s[%d]@%d failed: %s", ctx.name,
                  inbound.opened.envelope.type, inbound.topic, inbound.partition,
                  inbound.offset, type(exc).__name__)
        detail = str(exc) if isinstance(exc, KessaiError) else type(exc).__name__
        try:
            await ctx.dead_letter("handler_failed", detail, inbound.topic, inbound.partition,
                                  inbound.offset, inbound.raw
                                  or envelope.encode(inbound.opened.envelope), inbound.key)
        except Exception:
            log.error("%s: the dead letter could not be written either", ctx.name)


def consume(ctx: AgentContext, name: str, topic: str, handler: Handler) -> None:
    """Attach a faust agent that feeds every accepted record of ``topic`` to ``handler``."""

    async def agent(stream: faust.StreamT) -> None:
        async for inbound in ctx.inbound(stream):
            await run_safely(ctx, inbound, handler)

    ctx.app.agent(ctx.topic(topic), name=name)(agent)
