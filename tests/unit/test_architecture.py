"""The layout shows the architecture (issue 6, item 7), and these rules keep it so.

Every module of the project is parsed (``ast``, nothing is imported) and its imports, at the
top or inside a function, are checked:

- the runtime (``kessai/``) never imports an agent or the simulator; only the CLI
  (``kessai/cli.py``) composes them;
- an agent (``agents/X``) never imports another agent (``agents/Y``) nor the simulator: what two
  parties share lives in ``protocols/`` (or ``schemas/``);
- ``protocols/``, ``schemas/`` and ``topics/`` never import an agent or the simulator;
- the audit (``audit/``) is imported by the CLI alone and uses only the agents' pure decision
  modules (``AUDIT_MAY_USE``), never an agent's shell nor the simulator;
- the message types (``schemas/``) depend only on each other and the leaf modules
  ``kessai.money`` and ``kessai.errors``, which import no other project module;
- no import cycle among the project's modules (imports under ``if TYPE_CHECKING:`` are
  annotations only and do not count for cycles).

The rules are pure functions of an import graph; the last tests feed them a forbidden import
to show that each rule catches its case.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kessai", "agents", "sim", "protocols", "schemas", "topics", "deploy", "audit")
LEAVES = frozenset({"kessai.money", "kessai.errors"})
COMPOSER = "kessai.cli"  # the one runtime module that composes agents and the simulator
# Generated for the development key set (`kessai keys init`), so they name its identities.
SIM_USERS = frozenset({"deploy.values"})
# The audit (issue 10) recomputes decisions with the agents' own pure modules, never their
# faust shells; only the CLI composes it.
AUDIT_MAY_USE = frozenset({"agents.settlement.join", "agents.settlement.collation",
                           "agents.settlement.userauth", "agents.archiver.chain",
                           "agents.archiver.store", "agents.gateway.checks",
                           "agents.gateway.routing", "agents.paygate.txn",
                           "agents.paygate.tables", "agents.selector.routing",
                           "agents.issuer.rules", "agents.wallet.checks",
                           "agents.relay.flow"})
# Known breaches, each to be removed with its fix (a test fails once one is no longer there):
KNOWN: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    typing_only: bool = False  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        return f"{self.source} imports {self.target} (line {self.line})"


Graph = Mapping[str, list[Edge]]


# -- reading the tree ------------------------------------------------------------------------

def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name → file, for every module of the project's packages."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, typing_only: bool = False
             ) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, typing_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), typing_only)
        else:
            yield from _imports(node, typing_only)


def _resolve(name: str, known: Iterable[str]) -> str | None:
    """The longest project module that ``name`` is or lies in (None: not the project's)."""
    known = set(known)
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in known:
            return candidate
    return None


def import_graph(files: Mapping[str, Path] | None = None) -> dict[str, list[Edge]]:
    files = files if files is not None else module_files()
    known = set(files)
    graph: dict[str, list[Edge]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        edges: list[Edge] = []
        for node, typing_only in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # ``from pkg import mod`` imports the module pkg.mod when there is one.
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                         for a in node.names]
            for name in names:
                target = _resolve(name, known)
                if target is not None and target != module:
                    edges.append(Edge(module, target, node.lineno, typing_only))
        graph[module] = edges
    return graph


# -- the rules -------------------------------------------------------------------------------

def _top(module: str) -> str:
    return module.split(".")[0]


def _agent(module: str) -> str | None:
    """``agents.shop.agent`` → ``agents.shop``; the ``agents`` package itself is no agent."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "agents" and len(parts) > 1 else None


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layering_violations(graph: Graph) -> list[str]:
    out = []
    for edges in graph.values():
        for e in edges:
            src, dst = e.source, e.target
            if _top(src) == "kessai" and src != COMPOSER and _top(dst) in ("agents", "sim"):
                out.append(f"runtime: {e}")
            if _agent(src) and _top(dst) == "agents" and _agent(dst) not in (None, _agent(src)):
                out.append(f"agent imports another agent: {e}")
            if _top(dst) == "sim" and _top(src) != "sim" and src != COMPOSER \
                    and src not in SIM_USERS:
                out.append(f"simulator imported outside the CLI: {e}")
            if _top(src) in ("protocols", "schemas", "topics") and _top(dst) == "agents":
                out.append(f"shared module imports an agent: {e}")
            if _top(src) == "schemas" and not (_top(dst) == "schemas" or dst in LEAVES):
                out.append(f"schemas may use only schemas, kessai.money, kessai.errors: {e}")
            if src in LEAVES and dst not in LEAVES and dst != "kessai":
                out.append(f"leaf module imports the project: {e}")
            if _top(dst) == "audit" and _top(src) != "audit" and src != COMPOSER:
                out.append(f"audit imported outside the CLI: {e}")
            if _top(src) == "audit" and (_top(dst) == "sim" or (
                    _top(dst) == "agents" and dst != "agents" and dst not in AUDIT_MAY_USE)):
                out.append(f"audit imports more than the agents' pure modules: {e}")
    return out


def cycles(graph: Graph) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), sorted."""
    succ = {m: sorted({e.target for e in edges if not e.typing_only and e.target in graph})
            for m, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return sorted(found)


# -- the tree obeys them ---------------------------------------------------------------------

def test_the_graph_covers_every_package() -> None:
    graph = import_graph()
    for package in PACKAGES:
        assert package in graph, package
    assert any(e.target == "kessai.money" for e in graph["schemas.v1"])


def _known(problem: str) -> bool:
    return any(f"{src} imports {dst} " in problem for src, dst in KNOWN)


def test_the_layering_rules_hold() -> None:
    problems = [p for p in layering_violations(import_graph()) if not _known(p)]
    assert not problems, "\n".join(problems)


def test_each_known_breach_is_still_there() -> None:
    """Remove an entry of ``KNOWN`` once its breach is fixed, so it cannot come back."""
    problems = layering_violations(import_graph())
    for src, dst in KNOWN:
        assert any(f"{src} imports {dst} " in p for p in problems), (src, dst)


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" ↔ ".join(c) for c in found)


# -- and each rule catches a forbidden import ------------------------------------------------

def _with(graph: Graph, source: str, target: str) -> dict[str, list[Edge]]:
    changed = {m: list(edges) for m, edges in graph.items()}
    changed[source] = [*changed[source], Edge(source, target, 1)]
    return changed


def test_each_rule_catches_a_forbidden_import() -> None:
    graph = import_graph()
    forbidden = [
        ("kessai.worker", "agents.shop.agent", "runtime"),
        ("kessai.supervisor", "sim.devkeys", "runtime"),
        ("agents.shop.carrier", "agents.wallet.store", "another agent"),
        ("agents.relay.agent", "sim.shop", "simulator imported"),
        ("schemas.v1", "kessai.crypto", "schemas may use only"),
        ("protocols.user", "agents.terminal.wallet", "shared module"),
        ("kessai.money", "kessai.crypto", "leaf module"),
        ("kessai.replay", "audit.verify", "audit imported outside"),
        ("audit.verify", "agents.settlement.agent", "audit imports more"),
        ("audit.verify", "sim.devdata", "audit imports more"),
    ]
    for source, target, rule in forbidden:
        problems = layering_violations(_with(graph, source, target))
        assert any(rule in p and target in p for p in problems), (source, target, problems)
    assert cycles(_with(graph, "kessai.errors", "kessai.settings"))


def test_the_reader_sees_lazy_relative_and_typing_only_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "kessai"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n    from kessai.c import C\n"
        "def f():\n    import agents.shop\n")
    (pkg / "b.py").write_text("")
    (pkg / "c.py").write_text("from kessai import a\n")
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "__init__.py").write_text("")
    (tmp_path / "agents" / "shop.py").write_text("")
    files = {m: p for m, p in {
        "kessai": pkg / "__init__.py", "kessai.a": pkg / "a.py", "kessai.b": pkg / "b.py",
        "kessai.c": pkg / "c.py", "agents": tmp_path / "agents" / "__init__.py",
        "agents.shop": tmp_path / "agents" / "shop.py"}.items()}
    graph = import_graph(files)
    edges = {(e.target, e.typing_only) for e in graph["kessai.a"]}
    assert edges == {("kessai.b", False), ("kessai.c", True), ("agents.shop", False)}
    assert any("runtime" in p for p in layering_violations(graph))
    assert cycles(graph) == []  # kessai.a → kessai.c only for type checking
