"""A pytest plugin for tests/unit/test_claims_doc.py: after collection, write every collected
test's node id and whether its skip markers (``skip``, ``skipif``, evaluated in this process's
environment, e.g. with ``CI=true``) would skip it, as JSON to ``$KESSAI_CLAIMS_COLLECT``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _pytest.skipping import evaluate_skip_marks


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    out = os.environ.get("KESSAI_CLAIMS_COLLECT")
    if not out:
        return
    found = {item.nodeid: evaluate_skip_marks(item) is not None for item in items}
    Path(out).write_text(json.dumps(found))
