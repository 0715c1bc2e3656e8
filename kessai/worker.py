"""`kessai worker AGENT`: one agent type as its own worker process.

The worker is handed the agent's module (the CLI picks it; the runtime imports no agent). An
agent module declares itself (see :mod:`agents`): the identities it signs as (``ACTORS``) or
the kind of actor it serves (``KIND``: every such actor of the key set), and ``register(ctx)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from types import ModuleType

import faust

from kessai import keys
from kessai.aiokafka_host import AiokafkaHost
from kessai.errors import ConfigError
from kessai.lifeline import watch_supervisor
from kessai.runtime import AgentContext, make_app
from kessai.settings import Settings


def identities(module: ModuleType, actors: Iterable[str]) -> list[str]:
    """The identities a worker of ``module`` signs as, given the key set's ``actors``: its
    ``ACTORS``, or every actor of its ``KIND`` (a shop server serves every shop, [0016])."""
    kind = getattr(module, "KIND", None)
    if kind is not None:
        return keys.of_kind(actors, kind)
    return list(module.ACTORS)


def build(name: str, module: ModuleType, settings: Settings) -> AgentContext:
    """Load keys (refusing to start without them) and register the agent on a new app."""
    registry = keys.load_registry(settings.keys_dir)
    hosted = identities(module, registry.signing)
    if not hosted:
        raise ConfigError(f"the key set in {settings.keys_dir} has no actor for the {name} "
                          "worker to serve")
    actor_keys = {a: keys.load_actor(settings.keys_dir, a) for a in hosted}
    if settings.host == "aiokafka":
        host: object = AiokafkaHost(name, settings)
    else:
        (settings.data_dir / "faust" / name).parent.mkdir(parents=True, exist_ok=True)
        host = make_app(name, settings)
    ctx = AgentContext(name, host, settings, registry, actor_keys)
    module.register(ctx)
    ctx.bind()
    return ctx


def run(name: str, module: ModuleType, settings: Settings, loglevel: str = "info") -> None:
    watch_supervisor()  # this process ends when the `kessai up` that started it is gone
    ctx = build(name, module, settings)
    logging.getLogger("kessai").setLevel(loglevel.upper())
    if isinstance(ctx.host, AiokafkaHost):
        logging.basicConfig(
            level=loglevel.upper(),
            format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")
        logging.getLogger("aiokafka").setLevel(logging.WARNING)  # a line per rebalance step
        asyncio.run(ctx.host.run())
        return
    worker = faust.Worker(ctx.app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
