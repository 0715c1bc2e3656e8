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


async def read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` from the beginning to now (Tansu-safe end detection)."""
    c = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                         group_id=None, auto_offset_reset="earliest")
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        out: list[Any] = []
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 1.5:
            batch = await c.getmany(timeout_ms=300)
            for recs in batch.values():
                out += recs
                if recs:
                    idle_since = time.monotonic()
        return out
    finally:
        await c.stop()


async def wait_for(settings: Settings, topic: str, predicate: Any, timeout: float = 30.0) -> Any:
    """The first decoded message on ``topic`` (from the start) satisfying ``predicate``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in await read_all(settings, topic):
            try:
                msg = envelope.body_of(envelope.decode(r.value))
            except Exception:
                continue
            if predicate(msg):
                return msg
        await asyncio.sleep(0.5)
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
