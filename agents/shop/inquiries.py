"""When the shop asks the settlement server's result history (seed 003 emb. 3, C22–C26).

Pure: which orders need an inquiry now, and when each one is asked next. The order DB keeps
the time of an order's next inquiry (``next_poll_ms``), so the deadline survives a restart and
the shop's timer fires it without new traffic.

- ``SHOP_POLLS``: the inquiry is the shop's only way to learn the result. First ``delay_ms``
  after the payment request, then every ``delay_ms``, at most ``limit`` times ([0062]).
- ``VIA_TERMINAL``: the terminal relays the result (emb. 1), but the shop does not depend on
  the terminal alone ([IMPL], issue 6 item 10): if no result has come ``result_wait_ms`` after
  the payment request (M4), it asks the history, then again with the interval doubling from
  ``delay_ms`` up to ``max_delay_ms``, until the history has an outcome — for as long as the
  history can have one (``give_up_ms`` after the order: the settlement server decides every
  order within its 1st-request lifetime and keeps the outcome for its history lifetime).
- ``DIRECT_BOTH``: the settlement server redelivers the shop's result until the shop
  acknowledges it (B21/B22): no inquiries.

Asking again is harmless: the answer is the stored outcome, and the order DB records a final
status once, so an answer after a relayed result (or the other way round) changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from kessai.errors import ConfigError

AWAITING_PAYMENT = "AWAITING_PAYMENT"
VIA_TERMINAL = "VIA_TERMINAL"
SHOP_POLLS = "SHOP_POLLS"


@dataclass(frozen=True)
class PollPolicy:
    """Inquiry timing; each field has an environment variable (milliseconds)."""

    delay_ms: int = 2_000  # KESSAI_SHOP_POLL_MS: SHOP_POLLS interval, VIA_TERMINAL first retry
    limit: int = 150  # KESSAI_SHOP_POLL_LIMIT: SHOP_POLLS inquiries before giving up
    # Long enough that a busy system's normal latency never triggers it (under a backlog the
    # inquiries would only add load): it is for a terminal that went silent.
    result_wait_ms: int = 30_000  # KESSAI_SHOP_RESULT_WAIT_MS: VIA_TERMINAL, before the 1st
    max_delay_ms: int = 60_000  # KESSAI_SHOP_POLL_MAX_MS: VIA_TERMINAL interval cap
    give_up_ms: int = 96 * 3600 * 1000  # VIA_TERMINAL: t_first + t_history by default

    def __post_init__(self) -> None:
        for name in ("delay_ms", "limit", "result_wait_ms", "max_delay_ms", "give_up_ms"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"shop poll policy: {name} must be positive")
        if self.max_delay_ms < self.delay_ms:
            raise ConfigError("KESSAI_SHOP_POLL_MAX_MS must be at least KESSAI_SHOP_POLL_MS "
                              f"({self.max_delay_ms} < {self.delay_ms})")

    @classmethod
    def from_env(cls, give_up_ms: int | None = None) -> PollPolicy:
        return cls(delay_ms=_env_positive("KESSAI_SHOP_POLL_MS", cls.delay_ms),
                   limit=_env_positive("KESSAI_SHOP_POLL_LIMIT", cls.limit),
                   result_wait_ms=_env_positive("KESSAI_SHOP_RESULT_WAIT_MS",
                                                cls.result_wait_ms),
                   max_delay_ms=_env_positive("KESSAI_SHOP_POLL_MAX_MS", cls.max_delay_ms),
                   give_up_ms=give_up_ms or cls.give_up_ms)

    def timer_interval_s(self, default_s: float) -> float:
        # Tick at least twice per delay so an inquiry is late by half a delay at most.
        shortest = min(self.delay_ms, self.result_wait_ms)
        return max(0.05, min(default_s, shortest / 2000))


def _env_positive(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


class Pollable(Protocol):
    """What the decisions read of an order (``agents.shop.orders.Order`` has it)."""

    @property
    def order_id(self) -> str: ...

    @property
    def result_mode(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def polls(self) -> int: ...

    @property
    def next_poll_ms(self) -> int | None: ...

    @property
    def created_ms(self) -> int: ...


P = TypeVar("P", bound=Pollable)


@dataclass(frozen=True)
class Inquiry(Generic[P]):
    """Ask about ``order`` now; its next inquiry is then at ``next_poll_ms`` (None: last)."""

    order: P
    next_poll_ms: int | None


def first_inquiry_ms(result_mode: str, awaiting_since_ms: int, policy: PollPolicy) -> int | None:
    """When to ask first about an order that now awaits payment (None: never)."""
    if result_mode == SHOP_POLLS:
        return awaiting_since_ms + policy.delay_ms
    if result_mode == VIA_TERMINAL:
        return awaiting_since_ms + policy.result_wait_ms
    return None


def needs_inquiry(order: Pollable, now_ms: int) -> bool:
    """The order awaits payment, has its id, and its inquiry time has come."""
    return (order.status == AWAITING_PAYMENT and bool(order.order_id)
            and order.next_poll_ms is not None and order.next_poll_ms <= now_ms)


def next_inquiry_ms(order: Pollable, now_ms: int, policy: PollPolicy) -> int | None:
    """After asking about ``order`` at ``now_ms`` (its ``polls``-th + 1 inquiry): when next."""
    asked = order.polls + 1
    if order.result_mode == SHOP_POLLS:
        return None if asked >= policy.limit else now_ms + policy.delay_ms
    if order.result_mode == VIA_TERMINAL:
        if now_ms - order.created_ms >= policy.give_up_ms:
            return None
        interval = min(policy.max_delay_ms, policy.delay_ms << min(asked - 1, 30))
        return now_ms + interval
    return None


def plan(orders: Iterable[P], now_ms: int, policy: PollPolicy) -> list[Inquiry[P]]:
    """The inquiries to make now, each with the time of the one after it."""
    return [Inquiry(o, next_inquiry_ms(o, now_ms, policy)) for o in orders
            if needs_inquiry(o, now_ms)]
