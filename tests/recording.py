"""The in-memory tier: drive an agent's handlers through a recording AgentContext, no broker.

``Rec`` signs what the agent emits, as the runtime would, and keeps it for assertions;
``inbound`` turns signed bytes into the verified record a handler receives.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from kessai import envelope, keys
from kessai.clock import Clock, FakeClock
from kessai.keys import ActorKeys, Registry
from kessai.runtime import AgentContext, Inbound, make_app
from kessai.settings import Settings
from kessai.worker import identities

CLOCK = FakeClock()
_offsets = itertools.count(1)


@dataclass
class Sent:
    topic: str
    msg: Any
    key: str
    sender: str
    raw: bytes


@dataclass
class Rec(AgentContext):
    """Signs what the agent emits, as the runtime would, and keeps it."""

    sent: list[Sent] = field(default_factory=list)
    dead: list[Any] = field(default_factory=list)

    async def emit(self, topic: str, msg: Any, correlation_id: str, *, key: str | None = None,
                   partition: int | None = None, sender: str | None = None) -> None:
        k = self.actor_keys(sender)
        env = envelope.seal_envelope(msg, correlation_id, k, self.clock)
        self.sent.append(Sent(topic, msg, key or correlation_id, k.actor, envelope.encode(env)))

    async def dead_letter(self, *a: Any, **kw: Any) -> None:
        self.dead.append(a)

    def take(self, topic: str | None = None) -> list[Sent]:
        out = [s for s in self.sent if topic is None or s.topic == topic]
        self.sent = [s for s in self.sent if s not in out]
        return out


def hosted(module: ModuleType, keydir: Path) -> list[str]:
    """The identities a worker of the agent ``module`` hosts in the key set at ``keydir``."""
    return identities(module, keys.load_registry(keydir).signing)


def context(keydir: Path, tmp_path: Path, name: str, actors: list[str],
            clock: Clock = CLOCK) -> Rec:
    settings = Settings(keys_dir=keydir, data_dir=tmp_path)
    return Rec(name, make_app(name, settings), settings, keys.load_registry(keydir),
               {a: keys.load_actor(keydir, a) for a in actors}, clock=clock)


def signed(msg: Any, actor_keys: ActorKeys, cid: str = "c", clock: Clock = CLOCK) -> bytes:
    return envelope.encode(envelope.seal_envelope(msg, cid, actor_keys, clock))


def inbound(raw: bytes, registry: Registry, topic: str = "t") -> Inbound:
    opened = envelope.open_record(raw, registry)
    return Inbound(opened, topic, 0, next(_offsets), opened.envelope.correlation_id.encode(),
                   raw)
