"""`kessai worker AGENT`: one agent type as its own worker process."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import faust

from kessai import keys
from kessai.errors import ConfigError
from kessai.lifeline import watch_supervisor
from kessai.runtime import AgentContext, make_app
from kessai.settings import Settings


def agent_module(name: str) -> Any:
    from agents import AGENTS

    try:
        return importlib.import_module(AGENTS[name])
    except KeyError:
        raise ConfigError(
            f"unknown agent {name!r}; choose one of: {', '.join(sorted(AGENTS))}") from None


def build(name: str, settings: Settings) -> AgentContext:
    """Load keys (refusing to start without them) and register the agent on a new app."""
    module = agent_module(name)
    registry = keys.load_registry(settings.keys_dir)
    actor_keys = {a: keys.load_actor(settings.keys_dir, a) for a in module.ACTORS}
    (settings.data_dir / "faust" / name).parent.mkdir(parents=True, exist_ok=True)
    app = make_app(name, settings)
    ctx = AgentContext(name, app, settings, registry, actor_keys)
    module.register(ctx)
    ctx.bind()
    return ctx


def run(name: str, settings: Settings, loglevel: str = "info") -> None:
    watch_supervisor()  # this process ends when the `kessai up` that started it is gone
    ctx = build(name, settings)
    logging.getLogger("kessai").setLevel(loglevel.upper())
    worker = faust.Worker(ctx.app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
