"""Which surviving mutants of the last ``mutmut run`` docs/testing.md does not account for.

``make mutate`` leaves its survivors in ``mutants/``; docs/testing.md must give a reason for
each (issue 7). This prints, per module, how many survivors only change human-readable text
(a string with a space in it: an exception message, an audit detail, a screen text — the
"prose" kind) and lists every other survivor whose name the document does not mention, with
its diff, so a reviewer reads only what is new. Run from the project root after
``make mutate``: ``python tests/mutation_review.py [--all]`` (``--all``: list the prose ones
too). Exit 1 when a non-prose survivor is not named in docs/testing.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

SURVIVED = 0


def short_name(key: str) -> str:
    """``agents.x.y.xǁOrderDBǁadd__mutmut_10`` → ``OrderDB.add#10``;
    ``agents.x.y.x_receipt__mutmut_44`` → ``x_receipt#44`` (docs/testing.md's names)."""
    func, number = key.rsplit("__mutmut_", 1)
    func = func.rsplit(".", 1)[1]
    if func.startswith("xǁ"):
        _, cls, method = func.split("ǁ")
        func = f"{cls}.{method}"
    return f"{func}#{number}"


def survivors(root: Path) -> dict[str, list[str]]:
    by_module: dict[str, list[str]] = {}
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        module = str(meta.relative_to(root / "mutants"))[: -len(".py.meta")].replace("/", ".")
        by_module[module] = sorted(k for k, c in codes.items() if c == SURVIVED)
    return by_module


def is_prose(diff: str) -> bool:
    """True when the removed and added lines differ only in a string that reads as text."""
    removed = [ln[1:] for ln in diff.splitlines() if ln.startswith("-") and
               not ln.startswith("---")]
    added = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and
             not ln.startswith("+++")]
    if not removed or not added:
        return False
    # One statement over several lines: one line, and "a " "b" (implicit concatenation) as one
    # literal.
    removed = [re.sub(r"([\"'])\s+f?([\"'])", "", " ".join(ln.strip() for ln in removed))]
    added = [re.sub(r"([\"'])\s+f?([\"'])", "", " ".join(ln.strip() for ln in added))]
    literal = re.compile(r"f?\"([^\"]*)\"|f?'([^']*)'")
    before = ["".join(m) for m in literal.findall(removed[0])]
    if literal.sub('""', removed[0]) == literal.sub('""', added[0]):
        after = ["".join(m) for m in literal.findall(added[0])]
        changed = [b for b, a in zip(before, after, strict=False) if b != a]
    else:  # the message dropped: ``Error(None)``, ``Show("error", None)``
        spans = list(literal.finditer(removed[0]))
        changed = [text for m, text in zip(spans, before, strict=True)
                   if any(removed[0][:m.start()] + instead + removed[0][m.end():] == added[0]
                          for instead in ("None", ""))]
        if not changed:
            return False  # the code around the strings changed
    return bool(changed) and all(" " in b for b in changed)


def show(key: str) -> str:
    """``mutmut show KEY``'s text, in-process (a process per mutant costs a second each)."""
    try:
        from mutmut import __main__ as mutmut_cli

        found = mutmut_cli.find_mutant(key)
        return f"# {key}\n" + mutmut_cli.get_diff_for_mutant(key, path=found.path)
    except Exception:  # mutmut's internals moved: ask its command line
        return subprocess.run(["mutmut", "show", key], capture_output=True, text=True,
                              check=False).stdout


def main(argv: list[str]) -> int:
    root = Path.cwd()
    documented = (root / "docs" / "testing.md").read_text()
    unexplained = 0
    for module, keys in survivors(root).items():
        prose, other = [], []
        for key in keys:
            diff = show(key)
            (prose if is_prose(diff) else other).append((key, diff))
        new = [(k, d) for k, d in other if short_name(k) not in documented]
        print(f"{module}: {len(keys)} survived, {len(prose)} prose, "
              f"{len(other) - len(new)} named in docs/testing.md, {len(new)} not named")
        for key, diff in (prose if "--all" in argv else []) + new:
            print(f"  {short_name(key)}\n" + "\n".join("    " + ln for ln in
                                                        diff.splitlines()[1:]))
        unexplained += len(new)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
