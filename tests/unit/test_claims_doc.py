"""docs/claims.md stays true: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIX = {"u/": "tests/unit/", "e/": "tests/e2e/"}


def named_tests() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "claims.md").read_text()
    refs: list[tuple[str, str]] = []
    current = ""
    for token in re.findall(r"`([^`]+)`", text):
        if token[:2] in PREFIX and ".py" in token:
            path, _, name = token.partition("::")
            current = PREFIX[token[:2]] + path[2:]
            if name:
                refs.append((current, name))
        elif token.startswith("::") and current:
            refs.append((current, token[2:]))
    return refs


def defined(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {n.name for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_claims_doc_names_only_tests_that_exist() -> None:
    refs = named_tests()
    assert len(refs) > 60
    missing = [f"{p}::{n}" for p, n in refs
               if not (ROOT / p).exists() or re.sub(r"\[.*\]$", "", n) not in defined(p)]
    assert not missing, f"docs/claims.md names tests that do not exist: {missing}"
