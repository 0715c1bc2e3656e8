"""Seed 003 claims 45–48: the shop program and the settlement program on a medium.

kessai's medium is its wheel. The test builds the wheel from this tree, installs it into a
fresh virtual environment (dependencies from the package index, nothing from this tree), and
runs the system from that install, outside the source tree: the shop and settlement workers
must be processes of the fresh environment's interpreter importing their code from its
site-packages, and every demo purchase must end as expected.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.e2e.test_up import DEMO_TIMEOUT_S, READY_TIMEOUT_S, Up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only the wheel (and its dependencies) installed."""
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT, cwd=dist)
    [wheel] = dist.glob("kessai-*.whl")
    env_dir = tmp_path_factory.mktemp("fresh") / "venv"
    # No pip of its own (bootstrapping one took ~25 s here): this interpreter's pip installs
    # into it. Not byte-compiled ahead (another ~25 s, mostly for modules no worker imports):
    # the first import below compiles what the workers use, once.
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile", wheel,
        cwd=dist)
    return env_dir


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_shop_and_settlement_workers(
        installed: Path, tmp_path: Path) -> None:
    python = installed / "bin" / "python"
    where = run(python, "-c", "import agents.shop.agent as s, agents.settlement.agent as t; "
                "print(s.__file__); print(t.__file__)", cwd=tmp_path).split()
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
               cwd=tmp_path).strip()
    assert all(path.startswith(site) for path in where), (where, site)
    assert not any(path.startswith(str(ROOT)) for path in where)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    up = Up(tmp_path, "--demo", "--exit-after-demo", python=python, env=env)
    try:
        up.wait_line(r"all workers ready", READY_TIMEOUT_S)
        pids = up.worker_pids()
        for agent in ("shop", "settlement"):
            exe = Path(f"/proc/{pids[agent]}/exe").resolve()
            assert exe == python.resolve(), (agent, exe)
            cmdline = Path(f"/proc/{pids[agent]}/cmdline").read_bytes().split(b"\0")
            assert cmdline[1:5] == [b"-m", b"kessai.cli", b"worker", agent.encode()], cmdline
        code = up.wait_exit(DEMO_TIMEOUT_S)
        out = up.output()
        assert code == 0, out
        summary = out.split("\nsummary:\n", 1)[1].splitlines()
        scenarios = [line for line in summary if line.startswith("  ")]
        assert scenarios and all(line.rstrip().endswith(" ok") for line in scenarios), out
        assert "APPROVED" in "\n".join(scenarios)
    finally:
        up.cleanup()
