"""Killed / survived per module of the last ``mutmut run`` (``make mutate`` prints it).

Reads mutmut's own result files (``mutants/**/*.py.meta``): exit code 0 means the tests still
passed with the mutant in place (survived); 1 or more, a test failed (killed). Run from the
project root.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KILLED_CODES = {1, 3}  # a test failed / pytest was interrupted by a failing test
SURVIVED, NO_TESTS, TIMEOUT = 0, 33, 36  # mutmut's codes: no test covers it; took too long


def summary(root: Path) -> list[tuple[str, int, int, int]]:
    rows = []
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        codes = list(json.loads(meta.read_text())["exit_code_by_key"].values())
        if all(c is None for c in codes):
            continue  # not run: a run restricted to other modules (`make mutate MUTANTS=...`)
        module = str(meta.relative_to(root / "mutants"))[: -len(".meta")]
        killed = sum(1 for c in codes if c is not None and c not in (SURVIVED, NO_TESTS))
        survived = sum(1 for c in codes if c == SURVIVED)
        untested = sum(1 for c in codes if c == NO_TESTS or c is None)
        rows.append((module, killed, survived, untested))
    return rows


def main() -> int:
    rows = summary(Path.cwd())
    if not rows:
        print("no mutmut results: run `make mutate` first", file=sys.stderr)
        return 1
    print(f"{'module':40} {'killed':>7} {'survived':>9} {'no test':>8} {'score':>6}")
    for module, killed, survived, untested in rows:
        total = killed + survived + untested
        print(f"{module:40} {killed:7} {survived:9} {untested:8} "
              f"{(100 * killed / total if total else 100):5.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
