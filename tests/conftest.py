"""Fixtures live in plain modules (tests/fixtures.py) and are registered here; so is the split
of the suite over pytest-xdist's workers (tests/workunits.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workunits import work_unit

pytest_plugins = ["tests.fixtures"]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # Not `--dist loadgroup`: under pytest 9.2 its marks no longer group (pytest-xdist #1386).
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # units in collection order: the system's first
    return ByWorkUnit(config, log)
