"""The one door every record passes before a handler runs (issue 6, item 1).

decode → verify signature → freshness → replay check → admission (declared type and sender) →
handler. Any failure, including an exception inside the handler, becomes a dead letter with
its reason and the original bytes, and the agent goes on with the next record.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kessai import envelope
from kessai.clock import Clock
from kessai.errors import KessaiError, ReplayedMessage
from kessai.handlers import Rejection, Routes, admit
from kessai.keys import Registry

log = logging.getLogger("kessai")

DeadLetterFn = Callable[[str, str, str, int, int, bytes, "bytes | None"], Awaitable[None]]


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

    @property
    def trace_id(self) -> str:
        return self.opened.envelope.trace_id


def claimed_trace(raw: bytes) -> str:
    """The trace id a record's envelope names, or "" if it does not decode."""
    try:
        return envelope.decode(raw).trace_id
    except KessaiError:
        return ""


class ReplayCache:
    """Message ids seen, with where they were seen.

    A redelivery after a crash comes from the same offset: it is processed again (the handlers
    are idempotent). The same message id at another offset is a replay.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._seen: collections.OrderedDict[str, tuple[str, int, int]] = (
            collections.OrderedDict())

    def check(self, msg_id: str, where: tuple[str, int, int]) -> None:
        seen = self._seen.get(msg_id)
        if seen is not None and seen != where:
            raise ReplayedMessage(
                f"message id {msg_id} already seen at {seen[0]}[{seen[1]}]@{seen[2]}")
        self._seen[msg_id] = where
        self._seen.move_to_end(msg_id)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


class Door:
    """Admits one record at a time into the agent's declared handlers."""

    def __init__(self, agent: str, routes: Routes, registry: Registry, clock: Clock,
                 max_age_ms: int, dead_letter: DeadLetterFn) -> None:
        self.agent = agent
        self.routes = routes
        self.registry = registry
        self.clock = clock
        self.max_age_ms = max_age_ms
        self.dead_letter = dead_letter
        self.replays = ReplayCache()

    def open(self, topic: str, partition: int, offset: int, key: bytes | None,
             raw: bytes) -> Inbound:
        """decode → verify → freshness → replay check; raises a KessaiError on bad input."""
        opened = envelope.open_record(raw, self.registry, now_ms=self.clock.now_ms(),
                                      max_age_ms=self.max_age_ms)
        self.replays.check(opened.envelope.id, (topic, partition, offset))
        return Inbound(opened, topic, partition, offset, key, raw)

    async def receive(self, topic: str, partition: int, offset: int, key: bytes | None,
                      raw: bytes) -> None:
        """Run the record through the door and its handler; never raises for bad input."""
        try:
            inbound = self.open(topic, partition, offset, key, raw)
        except KessaiError as exc:
            # The dead letter joins the trace the record claims (unverified: a trace id is
            # only a label to find the purchase by, never trusted for anything else).
            token = envelope.CURRENT_TRACE.set(claimed_trace(raw))
            try:
                await self.dead_letter(exc.code, str(exc), topic, partition, offset, raw, key)
            finally:
                envelope.CURRENT_TRACE.reset(token)
            return
        route = admit(self.routes, topic, inbound.message, inbound.sender)
        if isinstance(route, Rejection):
            await self.dead_letter(route.reason, route.detail, topic, partition, offset, raw,
                                   key)
            return
        token = envelope.CURRENT_TRACE.set(inbound.trace_id)
        try:
            await route.handler(inbound)
        except Exception as exc:
            # Only kessai errors (whose messages never hold secrets) are quoted; others by
            # class name, without a traceback: a third-party text could quote a secret.
            log.error("%s: handling %s from %s[%d]@%d failed: %s", self.agent,
                      inbound.opened.envelope.type, topic, partition, offset,
                      type(exc).__name__)
            detail = str(exc) if isinstance(exc, KessaiError) else type(exc).__name__
            try:
                await self.dead_letter("handler_failed", detail, topic, partition, offset,
                                       raw, key)
            except Exception:
                log.error("%s: the dead letter could not be written either", self.agent)
        finally:
            envelope.CURRENT_TRACE.reset(token)
