"""Test helper: an agent module by its name (tests may compose agents; the runtime may not)."""

from __future__ import annotations

import importlib
from types import ModuleType

from agents import AGENTS


def agent_module(name: str) -> ModuleType:
    return importlib.import_module(AGENTS[name])
