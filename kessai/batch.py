"""Batches at the edges (issue 6, item 4): one SQLite commit per store, and the records that
announce its writes produced together, for all the records a worker has at hand.

While a worker handles the records a poll brought, the SQLite writes their handlers make stay
in one open transaction per store, and every record emitted after such a write is *held*
(a record emitted while no write waits leaves at once, as without batching). When no record is
left to handle at once (or ``max_records`` were handled, or an offset commit is due) the batch is
**flushed**: first every store that wrote commits its transaction, then the held records are
handed to the producer together, none awaited until the broker acks it. The runtime's offset
commit then waits until the broker has acknowledged every record
(:func:`kessai.transport.durable_flush`), so an offset is still committed only after the state
and the records of its event are durable — and state is durable before the records that
announce it leave, as when every write committed at once.

A store takes part through :func:`defer_commit`: inside a batch it registers its commit (once
per batch) and returns True; outside one (a timer, an HTTP request, a test) it returns False
and the store commits at once, as before.

A batch is a latency no-op: it never waits for more records, so one purchase at a time flushes
after each record, exactly as without batching.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator

Hook = Callable[[], Awaitable[None]]
Send = Callable[[str, bytes, bytes, "int | None", list[tuple[str, bytes]]], Awaitable[None]]
Held = tuple[str, bytes, bytes, "int | None", list[tuple[str, bytes]]]

_CURRENT: contextvars.ContextVar[Batch | None] = contextvars.ContextVar("kessai_batch",
                                                                        default=None)


class Batch:
    """Records held and store commits deferred until :meth:`flush`."""

    def __init__(self, send: Send, max_records: int = 500) -> None:
        self._send = send
        self.max_records = max_records
        self.handled = 0
        self._held: list[Held] = []
        self._commits: dict[int, Hook] = {}
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> bool:
        return bool(self._held or self._commits)

    @property
    def holding(self) -> bool:
        """True while a store's writes wait for the flush: a record emitted now must wait
        too (it may announce them). Otherwise a record can leave at once, as it would
        without batching."""
        return bool(self._commits or self._held)

    def hold(self, topic: str, key: bytes, value: bytes, partition: int | None,
             headers: list[tuple[str, bytes]]) -> None:
        self._held.append((topic, key, value, partition, headers))

    def defer(self, store: object, commit: Hook) -> None:
        """Run ``commit`` once at the next flush, before any held record is sent."""
        self._commits.setdefault(id(store), commit)

    def handled_one(self) -> bool:
        """Count one handled record; True when the batch is full and should be flushed."""
        self.handled += 1
        return self.handled >= self.max_records

    async def flush(self) -> None:
        """Commit the stores, then send the held records (each handed to the producer, whose
        acks the offset commit waits for). A failed commit raises and keeps everything held,
        so nothing is announced (and no offset committed) that is not stored."""
        async with self._lock:
            self.handled = 0
            commits, self._commits = self._commits, {}
            try:
                for commit in commits.values():
                    await commit()
            except BaseException:
                self._commits = {**commits, **self._commits}
                raise
            held, self._held = self._held, []
            for i, record in enumerate(held):
                try:
                    await self._send(*record)
                except BaseException:
                    self._held = held[i:] + self._held
                    raise

    @contextlib.contextmanager
    def active(self) -> Iterator[Batch]:
        """Make this the batch of the running task (and of the tasks it creates)."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)


def current_batch() -> Batch | None:
    """The batch the running handler belongs to, or None outside a handler."""
    return _CURRENT.get()


def defer_commit(store: object, commit: Hook) -> bool:
    """Inside a batch: commit ``store`` at its flush (once) and return True. Outside one:
    return False — the caller commits at once."""
    batch = _CURRENT.get()
    if batch is None:
        return False
    batch.defer(store, commit)
    return True
