"""One scenario, two tiers: the in-memory bus and the real throwaway broker.

A scenario test takes the ``tier`` fixture and only uses :class:`Tier`'s three verbs, so the
same behaviour is proven fast in memory (real handlers, real crypto, an injected clock) and end
to end over real worker processes on the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from kessai.clock import FakeClock
from kessai.membus import MemoryBus
from kessai.settings import Settings
from tests.agents import agent_module
from tests.e2e import bus


class Tier(Protocol):
    name: str
    settings: Settings

    async def send(self, topic: str, msg: Any, key: str, actor: str) -> None: ...

    async def wait_for(self, topic: str, predicate: Callable[[Any], bool],
                       timeout: float = 30.0) -> Any: ...

    async def elapse(self, ms: int) -> None: ...


class MemoryTier:
    """Settlement and issuer on the in-memory bus; time moves only when told to."""

    name = "memory"

    def __init__(self, settings: Settings, agents: tuple[str, ...]) -> None:
        self.settings = settings
        self.clock = FakeClock()
        self.bus = MemoryBus(settings, self.clock)
        for agent in agents:
            self.bus.add_module(agent, agent_module(agent))

    async def send(self, topic: str, msg: Any, key: str, actor: str) -> None:
        await self.bus.send(topic, msg, key, actor)
        await self.bus.drain()

    async def wait_for(self, topic: str, predicate: Callable[[Any], bool],
                       timeout: float = 30.0) -> Any:
        await self.bus.drain()
        for msg in self.bus.messages(topic):
            if predicate(msg):
                return msg
        raise TimeoutError(f"nothing matching on {topic} (in memory, after draining)")

    async def elapse(self, ms: int) -> None:
        # Step in timer-sized slices so deadline ticks fire as they would in real time.
        step = max(1, int(self.settings.timer_interval_s * 1000))
        for _ in range(0, ms, step):
            self.clock.advance(step)
            await self.bus.tick()

    async def close(self) -> None:
        await self.bus.stop()


class BrokerTier:
    """Every agent as its own worker process on the session's throwaway broker."""

    name = "broker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, topic: str, msg: Any, key: str, actor: str) -> None:
        await bus.send(self.settings, topic, msg, key, actor)

    async def wait_for(self, topic: str, predicate: Callable[[Any], bool],
                       timeout: float = 30.0) -> Any:
        return await bus.wait_for(self.settings, topic, predicate, timeout)

    async def elapse(self, ms: int) -> None:
        await asyncio.sleep(ms / 1000)

    async def close(self) -> None:
        return None


async def wait_for_after(tier: Tier, ms: int, topic: str, predicate: Callable[[Any], bool],
                         timeout: float = 30.0) -> Any:
    """The message ``predicate`` matches on ``topic`` once ``ms`` of time have passed.

    In memory the clock jumps ``ms`` and the bus settles. On the broker time cannot jump: the
    wait starts at once and lasts up to ``ms`` longer than ``timeout``, so it ends when the
    record comes instead of after a fixed sleep of ``ms``.
    """
    if isinstance(tier, MemoryTier):
        await tier.elapse(ms)
        return await tier.wait_for(topic, predicate, timeout)
    return await tier.wait_for(topic, predicate, timeout + ms / 1000)
