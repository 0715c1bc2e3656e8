"""The aiokafka host on the throwaway broker: records through the door, a failing handler
dead-lettered without stopping the worker, table writes in the changelog, offsets committed
after the acks, and a restarted worker that rebuilds its table and redoes nothing committed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from kessai import envelope, keys
from kessai.aiokafka_host import AiokafkaHost
from kessai.clock import SystemClock
from kessai.door import Inbound
from kessai.runtime import DEAD_LETTERS, AgentContext
from kessai.settings import Settings
from kessai.tables import changelog_topic
from schemas.v1 import DeadlineTick
from tests.e2e.bus import read_all

PARTITIONS = 4


class Agent:
    """A one-handler agent: remembers each tick's offset in its table; "boom" raises."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.handled: list[str] = []
        self.table: dict[bytes, bytes] | None = None

    def register(self, ctx: AgentContext) -> None:
        table = ctx.table("seen", partitions=PARTITIONS)
        self.table = table  # type: ignore[assignment]

        async def on_tick(inbound: Inbound) -> None:
            tick: DeadlineTick = inbound.message
            self.handled.append(tick.join_key)
            if tick.join_key == "boom":
                raise RuntimeError("the handler failed")
            table[tick.join_key.encode()] = str(inbound.offset).encode()

        ctx.handle(self.topic, on_tick, types=(DeadlineTick,), senders=("settlement",))


def start(name: str, agent: Agent, settings: Settings) -> tuple[AiokafkaHost, asyncio.Task[None]]:
    host = AiokafkaHost(name, settings)
    registry = keys.load_registry(settings.keys_dir)
    ctx = AgentContext(name, host, settings, registry,
                       {"settlement": keys.load_actor(settings.keys_dir, "settlement")})
    agent.register(ctx)
    host.bind(ctx)  # not ctx.bind(): the test's topic is not in the catalogue
    return host, asyncio.create_task(host.run(signals=False))


async def until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_records_pass_the_door_tables_survive_a_restart_and_nothing_is_redone(
        settings: Settings, provisioned: object, unique_topic_prefix: Callable[[str], str],
        tmp_path: Path) -> None:
    topic = f"{unique_topic_prefix('host')}.ticks"
    name = f"hosttest-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    settings = settings.with_(data_dir=tmp_path)

    first = Agent(topic)
    host, task = start(name, first, settings)
    try:
        await _first_life(host, first, topic, settings)
    finally:
        host.stop()
        await asyncio.wait_for(task, 15)
    await _after_stop(name, topic, settings)


async def _first_life(host: AiokafkaHost, first: Agent, topic: str, settings: Settings) -> None:
    await until(lambda: host.ready, "the first assignment")
    assert host.active_partitions(topic) == set(range(PARTITIONS))
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    settlement = keys.load_actor(settings.keys_dir, "settlement")
    boom_at = None
    try:
        for key in ("a", "boom", "b", "c"):
            env = envelope.seal_envelope(DeadlineTick(key, 0), key, settlement, SystemClock())
            meta = await producer.send_and_wait(topic, envelope.encode(env), key=key.encode(),
                                                headers=env.headers())
            if key == "boom":
                boom_at = (meta.partition, meta.offset)
    finally:
        await producer.stop()

    await until(lambda: first.table is not None and len(first.table) == 3,
                "the three good ticks in the table")
    assert sorted(first.handled) == ["a", "b", "boom", "c"]
    await until(lambda: all(host.caught_up(topic, p) for p in range(PARTITIONS)),
                "every partition caught up")
    dead = [envelope.body_of(envelope.decode(r.value))
            for r in await read_all(settings, DEAD_LETTERS)]
    ours = [d for d in dead if d.topic == topic]
    assert [(d.partition, d.offset) for d in ours] == [boom_at]
    assert (ours[0].reason, ours[0].detail) == ("handler_failed", "RuntimeError")


async def _after_stop(name: str, topic: str, settings: Settings) -> None:
    # Every handled offset was committed at stop (after the acks)...
    check = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=f"kessai-{name}",
                             enable_auto_commit=False)
    await check.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await check.end_offsets(tps)
        committed = {tp: await check.committed(tp) for tp in tps}
    finally:
        await check.stop()
    assert {tp: committed[tp] or 0 for tp in tps} == ends
    # ... and every table write is in the changelog.
    raw = [(r.key, r.value) for r in await read_all(settings, changelog_topic(name, "seen"))]
    assert sorted(k for k, _ in raw) == [b"a", b"b", b"c"]

    # A new worker rebuilds the table from the changelog and handles nothing again.
    second = Agent(topic)
    host2, task2 = start(name, second, settings)
    try:
        await until(lambda: host2.ready, "the restarted worker's assignment")
        assert second.table is not None
        assert dict(second.table) == {k: v for k, v in raw}
        # Nothing new since the commit: caught up (a deadline scan may act) without a record.
        await until(lambda: all(host2.caught_up(topic, p) for p in range(PARTITIONS)),
                    "the restarted worker caught up")
        await asyncio.sleep(1.0)
        assert second.handled == []
    finally:
        host2.stop()
        await asyncio.wait_for(task2, 15)

