"""Helpers for end-to-end tests: drive purchases, send hand-made records, read topics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kessai import envelope, keys
from kessai.clock import SystemClock
from kessai.settings import Settings
from schemas.v1 import PurchaseCommand
from sim.journey import Purchase, drive, new_session


def purchase(user: str = "alice", items: list[list[Any]] | None = None, shop: str = "shop-1",
             **kw: Any) -> Purchase:
    cmd = PurchaseCommand(session=new_session(), user_id=user, shop_id=shop,
                          items=items or [["XXXX", 1], ["YYYY", 1]], **kw)
    return Purchase(kw.get("scenario", {}).get("result_mode", "purchase"), cmd)


async def run(settings: Settings, *purchases: Purchase, timeout: float = 40.0) -> list[Purchase]:
    return await drive(settings, list(purchases), timeout)


def types(p: Purchase) -> list[str]:
    return [h.type for h in sorted(p.hops, key=lambda h: (h.at_ms, h.topic, h.offset))]


async def send(settings: Settings, topic: str, msg: Any, key: str, actor: str) -> None:
    """Sign ``msg`` as ``actor`` and produce it, as a misbehaving or scripted party would."""
    k = keys.load_actor(settings.keys_dir, actor)
    env = envelope.seal_envelope(msg, key, k, SystemClock())
    p = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all",
                         enable_idempotence=False)
    await p.start()
    try:
        await p.send_and_wait(topic, envelope.encode(env), key=key.encode(),
                              headers=env.headers())
    finally:
        await p.stop()


# A waiting fetch returns this soon when a partition has nothing new (the embedded broker holds
# a fetch for its whole wait): short for reading to a log's end (an empty topic is read in
# about one wait), longer while waiting for a record to come (fewer empty fetches).
FETCH_WAIT_MS = 20
WAIT_FOR_FETCH_WAIT_MS = 100
READ_TIMEOUT_S = 30.0


def _consumer(settings: Settings, fetch_wait_ms: int = FETCH_WAIT_MS) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                            group_id=None, auto_offset_reset="earliest",
                            fetch_max_wait_ms=fetch_wait_ms)


async def _assign_from_start(c: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or set())]
    if tps:
        c.assign(tps)
        await c.seek_to_beginning(*tps)
    return tps


async def read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` from the beginning to its end as the read finds it.

    The end is each partition's high watermark from the fetch responses (ListOffsets is not
    used: Tansu answers it short of the end when the last batch holds several records). A
    record produced after the read reached the end is not waited for: a test that expects a
    record to appear polls (:func:`wait_for`, ``eventually``), and one that checks a record
    is absent waits for the condition that makes it so first.
    """
    c = _consumer(settings)
    await c.start()
    try:
        tps = await _assign_from_start(c, topic)
        out: list[Any] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while tps:
            batch = await c.getmany(timeout_ms=FETCH_WAIT_MS)
            for recs in batch.values():
                out += recs
            ends = [c.highwater(tp) for tp in tps]
            positions = [await c.position(tp) for tp in tps]
            if all(end is not None and pos >= end for end, pos in zip(ends, positions, strict=True)):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end within "
                                   f"{READ_TIMEOUT_S}s")
        return out
    finally:
        await c.stop()


async def wait_for(settings: Settings, topic: str, predicate: Any, timeout: float = 30.0) -> Any:
    """The first decoded message on ``topic`` (from the start) satisfying ``predicate``,
    returned as soon as it is read; records that do not decode are skipped."""
    deadline = time.monotonic() + timeout
    c = _consumer(settings, WAIT_FOR_FETCH_WAIT_MS)
    await c.start()
    try:
        tps: list[TopicPartition] = []
        while time.monotonic() < deadline:
            if not tps:  # not created yet: look again (metadata is refreshed on the way)
                tps = await _assign_from_start(c, topic)
                if not tps:
                    await asyncio.sleep(0.5)
                    await c.topics()
                    continue
            batch = await c.getmany(timeout_ms=WAIT_FOR_FETCH_WAIT_MS)
            for recs in batch.values():
                for r in recs:
                    try:
                        msg = envelope.body_of(envelope.decode(r.value))
                    except Exception:
                        continue
                    if predicate(msg):
                        return msg
    finally:
        await c.stop()
    raise TimeoutError(f"nothing matching on {topic} within {timeout}s")


async def relay_up(system: Any, timeout: float = 60.0) -> None:
    """Both HTTP fronts answer (they start with their workers, after the Ready mark)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        for url in (f"{system.relay_url}/", f"{system.shop_url}/"):
            while True:
                try:
                    async with http.get(url):
                        break  # any answer: the server listens
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} does not answer")
                await asyncio.sleep(0.5)
