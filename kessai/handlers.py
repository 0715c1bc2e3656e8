"""Declared handlers: how an agent meets the bus (issue 6, item 1).

An agent declares each handler with its topic, the message types it takes there and the actor
kinds allowed to send them (faststream's ``@broker.subscriber`` is the model)::

    ctx.handle(FIRST, on_first, types=(FirstRequest,), senders=("shop",))

Everything here is pure: the declarations, the check against the topic catalogue that refuses
to start a worker whose declarations the catalogue does not allow, and the admission decision
the door (:mod:`kessai.door`) applies to every verified record before its handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kessai.errors import ConfigError
from topics.catalogue import TopicSpec, by_name

if TYPE_CHECKING:
    from kessai.door import Inbound

Handler = Callable[["Inbound"], Awaitable[None]]

# Dead-letter reasons the admission step gives.
UNEXPECTED_TOPIC = "unexpected_topic"
UNEXPECTED_TYPE = "unexpected_type"
UNAUTHORIZED_SENDER = "unauthorized_sender"
SENDER_MISMATCH = "sender_mismatch"


def actor_kind(actor: str) -> str:
    """The kind the catalogue names for an actor id: ``shop-1`` → ``shop``, ``wallet-a`` →
    ``wallet``, ``user:alice`` → ``user``; service actors (``settlement``) are their own kind."""
    for sep in (":", "-"):
        head, found, _ = actor.partition(sep)
        if found:
            return head
    return actor


@dataclass(frozen=True)
class Route:
    """One declared handler: records of ``types`` on ``topic`` from ``senders`` (actor kinds).

    ``sender_is`` names a field of the message that must equal the sender's actor id (a shop
    may only speak for itself), checked before the handler runs.
    """

    topic: str
    types: tuple[type, ...]
    senders: frozenset[str]
    handler: Handler
    name: str
    sender_is: str | None = None


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str


class Routes:
    """An agent's declared handlers, grouped by topic."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self._by_topic: dict[str, list[Route]] = {}

    def add(self, topic: str, handler: Handler, *, types: Iterable[type],
            senders: Iterable[str], sender_is: str | None = None,
            name: str | None = None) -> Route:
        types_t = tuple(types)
        senders_f = frozenset(senders)
        if not types_t:
            raise ConfigError(f"{self.agent}: a handler on {topic} must name its message types")
        if not senders_f:
            raise ConfigError(f"{self.agent}: a handler on {topic} must name its senders")
        for route in self._by_topic.get(topic, []):
            overlap = set(route.types) & set(types_t)
            if overlap:
                raise ConfigError(
                    f"{self.agent}: two handlers on {topic} take "
                    f"{', '.join(sorted(t.__name__ for t in overlap))}")
        route = Route(topic, types_t, senders_f, handler,
                      name or f"{self.agent}-{topic.removeprefix('kessai.')}", sender_is)
        self._by_topic.setdefault(topic, []).append(route)
        return route

    def topics(self) -> list[str]:
        return list(self._by_topic)

    def on(self, topic: str) -> list[Route]:
        return list(self._by_topic.get(topic, []))

    def __iter__(self) -> Any:
        for routes in self._by_topic.values():
            yield from routes

    def check(self, reader: str | None = None,
              spec_of: Callable[[str], TopicSpec] = by_name) -> None:
        """Refuse declarations the topic catalogue does not allow, naming the topic."""
        reader = reader or self.agent
        for route in self:
            try:
                spec = spec_of(route.topic)
            except KeyError:
                raise ConfigError(f"{self.agent}: handler {route.name} reads {route.topic}, "
                                  "which is not in the topic catalogue") from None
            if reader not in spec.readers:
                raise ConfigError(
                    f"{self.agent}: the catalogue does not let {reader} read {route.topic} "
                    f"(readers: {', '.join(spec.readers)})")
            unknown = sorted(route.senders - set(spec.producers))
            if unknown:
                raise ConfigError(
                    f"{self.agent}: handler {route.name} accepts {', '.join(unknown)} on "
                    f"{route.topic}, but the catalogue names only "
                    f"{', '.join(spec.producers)} as its producers")


def admit(routes: Routes, topic: str, message: Any, sender: str) -> Route | Rejection:
    """The route a verified ``message`` from ``sender`` on ``topic`` goes to, or why none."""
    candidates = routes.on(topic)
    if not candidates:
        return Rejection(UNEXPECTED_TOPIC, f"{routes.agent} has no handler on {topic}")
    kind = type(message).__name__
    for route in candidates:
        if isinstance(message, route.types):
            break
    else:
        return Rejection(UNEXPECTED_TYPE, f"{kind} on {topic}")
    if actor_kind(sender) not in route.senders:
        return Rejection(UNAUTHORIZED_SENDER, f"{kind} from {sender} on {topic}")
    if route.sender_is is not None and getattr(message, route.sender_is, None) != sender:
        return Rejection(SENDER_MISMATCH,
                         f"{sender} sent a {kind} whose {route.sender_is} is "
                         f"{getattr(message, route.sender_is, None)!r}")
    return route
