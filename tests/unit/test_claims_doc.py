"""docs/claims.md stays true (issue 7): every claim of every seed has its own row, each row
names tests (or says "as claim N" of a row that does), every named test exists and is
collected by pytest, and none of them is skipped when CI=true.

Skips are checked two ways, without running the (slow) named tests: skip/skipif markers are
evaluated by pytest itself during a collection with ``CI=true`` (tests/claims_collect.py); a
``pytest.skip``/``importorskip`` call in a named test or in a fixture it uses (its module and
the conftest files above it) must sit in a function that fails first when ``CI`` is set.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = {"u/": "tests/unit/", "e/": "tests/e2e/", "i/": "tests/integration/"}
SEED_CLAIMS = {"003": 51, "000/001": 16, "002": 33, "004": 13}

SECTION = re.compile(r"^## Seeds? ([0-9/]+) —", re.M)
ROW = re.compile(r"^\| *(\d+) *\|(.*)\|(.*)\| *$", re.M)
AS_CLAIM = re.compile(r"\bas claims? ([\d ,and]+)")

Ref = tuple[str, str]  # (test file, test name with an optional [parameter id])


def sections(text: str) -> dict[str, str]:
    """Seed → the text of its section."""
    marks = list(SECTION.finditer(text))
    return {m[1]: text[m.end(): marks[i + 1].start() if i + 1 < len(marks) else len(text)]
            for i, m in enumerate(marks)}


def refs_in(cell: str) -> list[Ref]:
    """Tests named in a table cell: `u/file.py::name`, then `::other` in the same file."""
    refs: list[Ref] = []
    current = ""
    for token in re.findall(r"`([^`]+)`", cell):
        if token[:2] in PREFIX and ".py" in token:
            path, _, name = token.partition("::")
            current = PREFIX[token[:2]] + path[2:]
            if name:
                refs.append((current, name))
        elif token.startswith("::") and current:
            refs.append((current, token[2:]))
    return refs


def claim_rows(section: str) -> dict[int, list[str]]:
    rows: dict[int, list[str]] = {}
    for m in ROW.finditer(section):
        rows.setdefault(int(m[1]), []).append(m[3])
    return rows


def resolved(rows: dict[int, list[str]], claim: int, seen: frozenset[int] = frozenset()
             ) -> list[Ref]:
    """The tests a claim's row names, with those of the rows it points to ("as claim N")."""
    if claim in seen or claim not in rows:
        return []
    cell = rows[claim][0]
    out = refs_in(cell)
    for m in AS_CLAIM.finditer(cell):
        for other in re.findall(r"\d+", m[1]):
            out += resolved(rows, int(other), seen | {claim})
    return out


def all_refs() -> list[Ref]:
    text = (ROOT / "docs" / "claims.md").read_text()
    return sorted({r for body in sections(text).values() for r in refs_in(body)})


def test_every_claim_of_every_seed_has_one_row_that_names_tests() -> None:
    found = sections((ROOT / "docs" / "claims.md").read_text())
    problems = []
    for seed, count in SEED_CLAIMS.items():
        if seed not in found:
            problems.append(f"seed {seed}: no '## Seed {seed} — …' section")
            continue
        rows = claim_rows(found[seed])
        for claim in range(1, count + 1):
            if len(rows.get(claim, [])) != 1:
                problems.append(f"seed {seed} claim {claim}: {len(rows.get(claim, []))} rows")
            elif not resolved(rows, claim):
                problems.append(f"seed {seed} claim {claim}: names no test")
        extra = sorted(set(rows) - set(range(1, count + 1)))
        if extra:
            problems.append(f"seed {seed}: rows for claims it does not have: {extra}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bool]:
    """Node id → skipped by its markers, for every test in the files docs/claims.md names,
    as pytest collects them with CI=true."""
    files = sorted({path for path, _ in all_refs()})
    missing = [f for f in files if not (ROOT / f).exists()]
    assert not missing, f"docs/claims.md names files that do not exist: {missing}"
    out = tmp_path_factory.mktemp("collect") / "collected.json"
    env = {**os.environ, "CI": "true", "KESSAI_CLAIMS_COLLECT": str(out)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "tests.claims_collect",
         "-p", "no:cacheprovider", *files], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, f"collection failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return dict(json.loads(out.read_text()))


def matching(ref: Ref, nodes: dict[str, bool]) -> list[str]:
    path, name = ref
    exact = f"{path}::{name}"
    if "[" in name:
        return [exact] if exact in nodes else []
    return [n for n in nodes if n == exact or n.startswith(exact + "[")]


def test_every_named_test_exists_and_is_collected(collected: dict[str, bool]) -> None:
    refs = all_refs()
    assert len(refs) > 60
    missing = [f"{p}::{n}" for p, n in refs if not matching((p, n), collected)]
    assert not missing, f"docs/claims.md names tests pytest does not collect: {missing}"


def test_no_named_test_is_skipped_by_a_marker_when_ci_is_set(
        collected: dict[str, bool]) -> None:
    skipped = sorted({node for ref in all_refs() for node in matching(ref, collected)
                      if collected[node]})
    assert not skipped, f"named in docs/claims.md but skipped when CI=true: {skipped}"


# -- skip calls -------------------------------------------------------------------------------

def functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def is_skip_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "pytest"
            and node.func.attr in ("skip", "importorskip"))


def fails_under_ci(fn: ast.AST) -> bool:
    """The function has ``if <something about CI>: ... pytest.fail(...)``."""
    for node in ast.walk(fn):
        if isinstance(node, ast.If) and "CI" in ast.unparse(node.test):
            for inner in ast.walk(ast.Module(body=node.body, type_ignores=[])):
                if isinstance(inner, ast.Call) and ast.unparse(inner.func) == "pytest.fail":
                    return True
    return False


def fixture_sources(test_file: Path) -> Iterator[dict[str, ast.FunctionDef |
                                                        ast.AsyncFunctionDef]]:
    tree = ast.parse(test_file.read_text())
    yield functions(tree)
    for node in ast.walk(tree):  # the project's test helpers it imports (tests/e2e/pages.py)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
            helper = ROOT / (node.module or "").replace(".", "/")
            if helper.with_suffix(".py").exists():
                yield functions(ast.parse(helper.with_suffix(".py").read_text()))
    for folder in test_file.parents:
        conftest = folder / "conftest.py"
        if conftest.exists():
            yield functions(ast.parse(conftest.read_text()))
        if folder == ROOT:
            break


def unguarded_skips(path: str, name: str) -> list[str]:
    """Functions reachable from the test (itself, the fixtures it asks for, theirs) that call
    pytest.skip without failing first when CI is set."""
    scopes = list(fixture_sources(ROOT / path))
    todo, seen, bad = [re.sub(r"\[.*\]$", "", name)], set(), []
    while todo:
        fn_name = todo.pop()
        if fn_name in seen:
            continue
        seen.add(fn_name)
        fn = next((s[fn_name] for s in scopes if fn_name in s), None)
        if fn is None:
            continue  # a built-in fixture (tmp_path, caplog, ...)
        if any(is_skip_call(n) for n in ast.walk(fn)) and not fails_under_ci(fn):
            bad.append(f"{path}::{name} → {fn_name}")
        todo += [a.arg for a in fn.args.args + fn.args.kwonlyargs]
        todo += [n.func.id for n in ast.walk(fn)  # and the functions it calls by name
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return bad


def test_no_named_test_or_its_fixtures_skips_without_failing_when_ci_is_set() -> None:
    bad = [b for path, name in all_refs() for b in unguarded_skips(path, name)]
    assert not bad, f"pytest.skip reachable from tests named in docs/claims.md: {bad}"


def test_the_skip_check_catches_an_unguarded_skip_in_a_fixture(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself can fail: the browser fixtures' Chromium check without its CI guard
    is caught, and the relay's browser test reaches it (fixture → ``chromium()`` →
    ``require_chromium()``)."""
    fixture = functions(ast.parse((ROOT / "tests/e2e/pages.py").read_text()))[
        "require_chromium"]
    assert any(is_skip_call(n) for n in ast.walk(fixture)) and fails_under_ci(fixture)
    unguarded = ast.parse(ast.unparse(fixture).replace("pytest.fail(", "print("))
    assert not fails_under_ci(unguarded)
    test = ("tests/e2e/test_relay_browser.py",
            "test_purchase_in_headless_chromium_as_phone_and_game")
    assert unguarded_skips(*test) == []
    monkeypatch.setattr(sys.modules[__name__], "fails_under_ci", lambda fn: False)
    assert unguarded_skips(*test) == [f"{test[0]}::{test[1]} → require_chromium"]
