"""An in-memory bus: whole flows through the real agents' handlers, no broker (issue 6, item 2).

faststream's ``TestKafkaBroker`` is the idea. Each agent is registered exactly as a worker
registers it (``register(ctx)``, then ``ctx.bind()``, which checks its declarations against
the topic catalogue), on a :class:`MemoryHost` instead of a faust app. Records are signed and
encoded as on the wire, partitioned by the same murmur2 partitioner Kafka clients use, and
delivered in order through each agent's door, so decode, verification, freshness, replay and
admission run as in production. Time is the injected clock: advance it and call :meth:`tick`
to fire the agents' timers without sleeping.
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from kessai import envelope, keys
from kessai.clock import Clock, FakeClock
from kessai.runtime import AgentContext, Hook
from kessai.settings import Settings
from topics.catalogue import by_name

log = logging.getLogger("kessai.membus")


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def message(self) -> Any:
        return envelope.body_of(envelope.decode(self.value))


class MemoryHost:
    """One agent's lifecycle on the in-memory bus."""

    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus
        self.timers: list[tuple[float, Hook]] = []
        self.starts: list[Hook] = []
        self.stops: list[Hook] = []
        self.tables: dict[str, dict[bytes, bytes]] = {}

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None,
                   headers: list[tuple[str, bytes]]) -> None:
        self.bus.append(topic, key, value, partition, headers)

    def table(self, name: str, partitions: int) -> MutableMapping[bytes, bytes]:
        return self.tables.setdefault(name, {})

    def active_partitions(self, topic: str) -> set[int]:
        return set(range(by_name(topic).partitions))  # one worker owns every partition

    def caught_up(self, topic: str, partition: int) -> bool:
        return not any(r.topic == topic and r.partition == partition for r in self.bus._queue)

    def every(self, seconds: float, fn: Hook) -> None:
        self.timers.append((seconds, fn))

    def at_start(self, fn: Hook) -> None:
        self.starts.append(fn)

    def at_stop(self, fn: Hook) -> None:
        self.stops.append(fn)

    def bind(self, ctx: AgentContext) -> None:
        self.bus.contexts.append(ctx)


class MemoryBus:
    """Topics as in-memory logs; one consumer group per registered agent."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or FakeClock()
        self.registry = keys.load_registry(settings.keys_dir)
        self.contexts: list[AgentContext] = []
        self.log: dict[str, list[Record]] = collections.defaultdict(list)
        self._queue: collections.deque[Record] = collections.deque()
        self._offsets: dict[tuple[str, int], itertools.count[int]] = {}
        self._partitioner = DefaultPartitioner()
        self._hosts: list[MemoryHost] = []

    # -- agents ------------------------------------------------------------------------------
    def add(self, name: str, register: Callable[[AgentContext], None],
            actors: Iterable[str]) -> AgentContext:
        """Register one agent as its worker would, on a fresh host."""
        host = MemoryHost(self)
        self._hosts.append(host)
        ctx = AgentContext(name, host, self.settings, self.registry,
                           {a: keys.load_actor(self.settings.keys_dir, a) for a in actors},
                           clock=self.clock)
        register(ctx)
        ctx.bind()
        return ctx

    def add_module(self, name: str, module: ModuleType) -> AgentContext:
        """Register an agent module (its ``register`` and the identities its worker would
        host: ``ACTORS``, or every actor of its ``KIND`` in the key set), as a worker does."""
        from kessai.worker import identities

        return self.add(name, module.register, identities(module, self.registry.signing))

    async def start(self) -> None:
        for host in self._hosts:
            for fn in host.starts:
                await fn()

    async def stop(self) -> None:
        await self.flush()
        for host in self._hosts:
            for fn in host.stops:
                await fn()

    # -- records -----------------------------------------------------------------------------
    def append(self, topic: str, key: bytes, value: bytes, partition: int | None = None,
               headers: Iterable[tuple[str, bytes]] = ()) -> Record:
        n = by_name(topic).partitions
        if partition is None:
            partition = self._partitioner(key, list(range(n)), list(range(n)))
        counter = self._offsets.setdefault((topic, partition), itertools.count())
        rec = Record(topic, partition, next(counter), key, value, tuple(headers))
        self.log[topic].append(rec)
        self._queue.append(rec)
        return rec

    async def send(self, topic: str, msg: Any, key: str, actor: str,
                   trace_id: str | None = None) -> Record:
        """Sign ``msg`` as ``actor`` (any party, honest or not) and put it on ``topic``."""
        k = keys.load_actor(self.settings.keys_dir, actor)
        env = envelope.seal_envelope(msg, key, k, self.clock, trace_id)
        return self.append(topic, key.encode(), envelope.encode(env), None, env.headers())

    async def drain(self, limit: int = 100_000) -> int:
        """Deliver queued records (and what their handlers emit) until none is left."""
        delivered = 0
        while self._queue:
            if delivered >= limit:
                raise RuntimeError(f"the bus did not settle after {limit} records (a loop?)")
            rec = self._queue.popleft()
            for ctx in self.contexts:
                if ctx.routes.on(rec.topic):
                    with ctx.batch.active():
                        await ctx.door.receive(rec.topic, rec.partition, rec.offset, rec.key,
                                               rec.value)
                    if ctx.batch.handled_one():
                        await ctx.batch.flush()
            delivered += 1
            if not self._queue:
                # As a worker does when no further record is at hand (kessai.batch).
                await self.flush()
        return delivered

    async def flush(self) -> None:
        """Flush every agent's batch: its stores commit, its held records join the log."""
        for ctx in self.contexts:
            await ctx.batch.flush()

    async def fire_timers(self) -> None:
        """Run every agent's timers once (at the clock's time), delivering nothing."""
        for host in self._hosts:
            for _, fn in host.timers:
                await fn()

    async def tick(self) -> int:
        """Run every agent's timers once (at the clock's time), then drain."""
        await self.fire_timers()
        return await self.drain()

    def messages(self, topic: str, kind: type | None = None) -> list[Any]:
        out = [r.message for r in self.log.get(topic, [])]
        return [m for m in out if kind is None or isinstance(m, kind)]
