"""Seed 004's examples as purchases on a system that runs: `kessai pay --flow selector --mode
MODE` against `kessai up`, and the broker tier of the selector's scenario tests.

Each example is a development client of its own (``sim.devdata.SELECTOR_EXAMPLES``): its
mode, modules and master/slave set-up are what the selector, module and server-wallet
workers read from the key set at start, so nothing here configures an agent. The simulated
user answers a prompt the way a person does: on the selector's page
(``/prompts?client=…``, then the page's form), not on the bus.

:func:`run_on` is written once against a small tier (``send``, ``wait_for``, ``seen``): the
in-memory bus in tests, :class:`Live` (a consumer following the topics and a producer) on a
running system.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from html import escape
from typing import Any, Protocol

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kessai import envelope, keys
from kessai.authenticators import join_key
from kessai.broker import wait_reachable
from kessai.clock import SystemClock
from kessai.errors import KessaiError
from kessai.settings import Settings
from protocols.user import delivery_for
from schemas.selector import Preselection, Prompt, RoutingEvent, WalletSettled
from schemas.v1 import OrderRequest, PaymentRequest, PaymentResult, PurchaseCommand
from sim import devdata

PROMPTS = "kessai.selector.prompts"
ROUTING_EVENTS = "kessai.selector.routing-events"
SETTLED = "kessai.wallet.settled"
RESULTS = "kessai.payment-results"
HANDED = "kessai.wum.wakeups"
UNROUTABLE = "kessai.wakeups.unroutable"
WATCHED = ("kessai.wakeups.selector", "kessai.wakeups.wum", PROMPTS, ROUTING_EVENTS, SETTLED,
           RESULTS, HANDED, UNROUTABLE, "kessai.settlement.second")


class SelectorTier(Protocol):
    async def send(self, topic: str, msg: Any, key: str, actor: str) -> None: ...

    async def wait_for(self, topic: str, predicate: Callable[[Any], bool],
                       timeout: float = 30.0) -> Any: ...

    def seen(self, topic: str) -> list[Any]: ...


class Live:
    """A running system as a tier: follows :data:`WATCHED` from the moment it starts."""

    def __init__(self, settings: Settings, topics: tuple[str, ...] = WATCHED) -> None:
        self.settings = settings
        self.topics = topics
        self.log: dict[str, list[Any]] = {t: [] for t in topics}
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        await asyncio.to_thread(wait_reachable, self.settings.bootstrap, 5)
        c = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap,
                             enable_auto_commit=False, group_id=None, request_timeout_ms=10_000)
        await c.start()
        self.consumer = c
        from topics.catalogue import by_name

        tps = [TopicPartition(t, p) for t in self.topics
               for p in (c.partitions_for_topic(t) or range(by_name(t).partitions))]
        c.assign(tps)
        await c.seek_to_end(*tps)
        for tp in tps:  # resolve "the end" now: what is sent after start() is seen
            await c.position(tp)
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap, acks="all",
                                         enable_idempotence=False)
        await self.producer.start()

    async def stop(self) -> None:
        for part in (self.producer, self.consumer):
            if part is not None:
                await part.stop()

    async def send(self, topic: str, msg: Any, key: str, actor: str) -> None:
        assert self.producer is not None
        env = envelope.seal_envelope(msg, key, keys.load_actor(self.settings.keys_dir, actor),
                                     SystemClock())
        await self.producer.send_and_wait(topic, envelope.encode(env), key=key.encode(),
                                          headers=env.headers())

    async def poll(self, timeout_ms: int = 200) -> None:
        assert self.consumer is not None
        batch = await self.consumer.getmany(timeout_ms=timeout_ms)
        for tp, records in batch.items():
            for r in records:
                try:
                    self.log[tp.topic].append(envelope.body_of(envelope.decode(r.value or b"")))
                except KessaiError:
                    continue  # another test's garbage record

    def seen(self, topic: str) -> list[Any]:
        return list(self.log[topic])

    async def wait_for(self, topic: str, predicate: Callable[[Any], bool],
                       timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.log[topic]:
                if predicate(msg):
                    return msg
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing matching on {topic} within {timeout}s")
            await self.poll()


async def open_prompt_page(page_url: str, client: str, wakeup_id: str,
                           timeout: float = 30.0) -> str:
    """The client's page once it shows the prompt of ``wakeup_id`` (the selector shows a
    prompt once it has read it)."""
    deadline = time.monotonic() + timeout
    mark = f'data-wakeup="{escape(wakeup_id)}"'
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{page_url}/prompts", params={"client": client}) as r:
                    text = await r.text()
                    if r.status == 200 and mark in text:
                        return text
            except aiohttp.ClientError:
                pass  # the selector worker is (re)starting
            if time.monotonic() > deadline:
                raise TimeoutError(f"the selector's page shows no prompt {wakeup_id} for "
                                   f"{client} within {timeout}s")
            await asyncio.sleep(0.2)


async def answer_on_page(page_url: str, client: str, wakeup_id: str, choice: str,
                         timeout: float = 30.0) -> str:
    """Answer the prompt as a person does on the page: open it, pick (or type) ``choice``,
    press "Pay with this". Returns the page the selector answers with."""
    await open_prompt_page(page_url, client, wakeup_id, timeout)
    form = {"wakeup_id": wakeup_id, "client": client, "choice": choice, "action": "answer"}
    async with aiohttp.ClientSession() as http, \
            http.post(f"{page_url}/answer", data=form) as r:
        return await r.text()


def direct_module(client: str) -> str | None:
    """The client's module that takes its wake-ups itself (no selector: Ex 6–12)."""
    return next((m.module_id for m in devdata.MODULES
                 if m.client_id == client and (m.direct or m.multi)), None)


async def run_on(tier: SelectorTier, mode: str, page_url: str, timeout: float = 60.0
                 ) -> dict[str, Any]:
    """One purchase of example ``mode`` for its development client; its route and the
    settlement it led to, as a JSON-able dict."""
    ex = devdata.SELECTOR_EXAMPLES[mode]
    c = ex.client_id
    session = f"sel-{mode}-{uuid.uuid4().hex[:8]}"
    scenario = {"result_mode": "DIRECT_BOTH", "brands": list(ex.brands)}
    if ex.preselect:
        await tier.send("kessai.selector.preselections", Preselection(c, ex.preselect), c,
                        "operator")
    module = direct_module(c) if c != "carol" else None
    if module is not None:  # no selector: the client's one module places the order
        await tier.send("kessai.order-requests", OrderRequest(
            session, c, "shop-1", [["XXXX", 1]], delivery_for(c), scenario=scenario),
            session, module)
    else:
        await tier.send("kessai.selector.commands", PurchaseCommand(
            session, c, "shop-1", [["XXXX", 1]], scenario=scenario), c, "operator")
    wake: PaymentRequest = await tier.wait_for(
        "kessai.wakeups.wum" if module else "kessai.wakeups.selector",
        lambda m: isinstance(m, PaymentRequest) and m.session == session, timeout)
    wid = join_key(wake.shop_id, wake.order_id)
    answered = []
    if ex.answer:
        prompt: Prompt = await tier.wait_for(
            PROMPTS, lambda m: isinstance(m, Prompt) and m.wakeup_id == wid, timeout)
        await answer_on_page(page_url, c, wid, ex.answer, timeout)
        answered.append({"asked_by": prompt.asked_by, "kind": prompt.kind,
                         "offered": prompt.candidates, "answer": ex.answer})
    settled: WalletSettled = await tier.wait_for(
        SETTLED, lambda m: isinstance(m, WalletSettled) and m.wakeup_id == wid, timeout)
    result: PaymentResult = await tier.wait_for(
        RESULTS, lambda m: isinstance(m, PaymentResult) and m.session == session
        and m.recipient == "user", timeout)
    events = [e for e in tier.seen(ROUTING_EVENTS)
              if isinstance(e, RoutingEvent) and e.wakeup_id == wid]
    return {
        "example": ex.n, "mode": mode, "client": c, "wakeup_id": wid, "order_id": wake.order_id,
        "brands": wake.brands,
        "route": [{"by": e.decided_by, "chosen": e.chosen, "reason": e.reason} for e in events],
        "prompts": answered, "settled_by": [settled.settled_by] if settled.ok else [],
        "via": [settled.via], "server": settled.server_id, "outcome": result.outcome,
    }


async def run_live(settings: Settings, modes: list[str], page_url: str,
                   timeout: float = 60.0) -> list[dict[str, Any]]:
    """Each example in turn on the running system at ``settings.bootstrap``."""
    live = Live(settings)
    await live.start()
    try:
        return [await run_on(live, mode, page_url, timeout) for mode in modes]
    finally:
        await live.stop()
