"""Connection maintenance (claims 10–11, FIG. 4): a terminal request that started a bus step
waits for the next contents up to the preset period, then gets the progress page.

The bus consumers ``notify`` a session when its contents arrive; the HTTP side ``wait``s. An
event per session is replaced on every notification, so a waiter that took the event before
looking at the session cannot miss a change. Waiters also look again every ``poll_s``, so a
change made by another relay worker on the shared state is seen too. Time comes from an
injected clock: tests move a virtual clock past the period instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from agents.relay.flow import KeepAlive, keepalive
from kessai.clock import Clock

T = TypeVar("T")


@dataclass
class Waiters:
    clock: Clock
    period_ms: int
    poll_s: float = 0.25
    _events: dict[str, asyncio.Event] = field(default_factory=dict)

    def notify(self, sid: str) -> None:
        event = self._events.pop(sid, None)
        if event is not None:
            event.set()

    async def wait(self, sid: str, started_ms: int,
                   look: Callable[[], Awaitable[tuple[bool, T]]]) -> tuple[KeepAlive, T]:
        """Wait until ``look()`` says the session no longer waits, or the period is over.

        ``look`` returns (still waiting?, the session); the answer is ``show`` with the
        session that has its contents, or ``progress`` with the one still waiting.
        """
        while True:
            event = self._events.setdefault(sid, asyncio.Event())
            waiting, value = await look()
            decision = keepalive(waiting, started_ms, self.clock.now_ms(), self.period_ms)
            if decision != "wait":
                return decision, value
            left_s = (started_ms + self.period_ms - self.clock.now_ms()) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), max(0.001, min(self.poll_s, left_s)))
