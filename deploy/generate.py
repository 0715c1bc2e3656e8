"""Write (or ``--check``) every file of deploy/ that is generated from the catalogue.

    python -m deploy.generate           write deploy/compose.yaml, deploy/k8s/*.yaml,
                                        deploy/acls.txt and deploy/acls.json
    python -m deploy.generate --check   exit 1 and name the stale files, write nothing

Output is deterministic: sorted, no timestamps, so a diff shows only real changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from deploy import acls, compose, kube

DEPLOY = Path(__file__).resolve().parent
K8S = "k8s"


def render() -> dict[str, str]:
    """Path relative to deploy/ (with ``/``) → file content."""
    grants = acls.grants()
    out = {
        "compose.yaml": compose.render(),
        "acls.txt": acls.render_txt(grants),
        "acls.json": json.dumps([g.to_json() for g in grants], indent=1, sort_keys=True) + "\n",
    }
    out.update({f"{K8S}/{name}": text for name, text in kube.files().items()})
    return dict(sorted(out.items()))


def _orphans(root: Path, wanted: dict[str, str]) -> list[str]:
    """Manifests in k8s/ that the generator no longer writes."""
    return sorted(f"{K8S}/{p.name}" for p in (root / K8S).glob("*.yaml")
                  if f"{K8S}/{p.name}" not in wanted)


def stale(root: Path = DEPLOY) -> list[str]:
    """Files under ``root`` that differ from what would be generated (missing, changed or
    orphaned), as paths relative to ``root``."""
    wanted = render()
    changed = [rel for rel, text in wanted.items()
               if not (root / rel).is_file()
               or (root / rel).read_text(encoding="utf-8") != text]
    return sorted(changed + _orphans(root, wanted))


def write(root: Path = DEPLOY) -> list[str]:
    """Bring ``root`` up to date; returns the paths it wrote or removed."""
    wanted = render()
    touched = stale(root)
    for rel in _orphans(root, wanted):
        (root / rel).unlink()
    for rel in touched:
        if rel in wanted:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            with open(root / rel, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(wanted[rel])
    return touched


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true",
                   help="exit 1 if a generated file is stale; write nothing")
    args = p.parse_args(argv)
    if args.check:
        found = stale()
        for rel in found:
            sys.stderr.write(f"stale: deploy/{rel}\n")
        if found:
            sys.stderr.write("run 'python -m deploy.generate' to regenerate them\n")
            return 1
        print("deploy/ is up to date")
        return 0
    touched = write()
    for rel in touched:
        print(f"wrote deploy/{rel}")
    if not touched:
        print("deploy/ is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
