"""`kessai up` as a user runs it (DESIGN §4, §6): its own embedded broker on a free port, dev
keys created on first use, one supervised worker process per agent, the demo, a crashed worker
restarted, and SIGTERM stopping everything."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents import AGENTS
from kessai.broker import free_port, port_open
from sim.journey import demo_purchases

pytestmark = [pytest.mark.e2e]

DEMO_TIMEOUT_S = 150.0
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
WORKER_LINE = re.compile(r"worker (\S+)\s+pid (\d+)")
RESTARTED_LINE = re.compile(r"worker (\S+) restarted \(pid (\d+)")


class Up:
    """A `kessai up` subprocess whose stdout lines are collected by a reader thread."""

    def __init__(self, tmp_path: Path, *args: str, python: Path | str = sys.executable,
                 env: dict[str, str] | None = None, host: str | None = None) -> None:
        self.port = free_port()
        env = {k: v for k, v in (os.environ if env is None else env).items()
               if not k.startswith("KESSAI_")}
        env["KESSAI_KEYS"] = str(tmp_path / "keys")
        if host is not None:
            env["KESSAI_HOST"] = host
        # Pages on free ports: the suite runs test files in parallel (pytest-xdist), and two
        # `kessai up` on their default ports would take each other's.
        for name in ("KESSAI_SHOP_HTTP_PORT", "KESSAI_RELAY_PORT", "KESSAI_DEVICE_HTTP_PORT",
                     "KESSAI_SELECTOR_PORT", "KESSAI_WEBSHOP_PORT"):
            env[name] = str(free_port())
        self.keys_dir = tmp_path / "keys"
        self.proc = subprocess.Popen(
            [str(python), "-m", "kessai.cli", "up", "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=env, cwd=tmp_path)
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first output line matching ``pattern``, waiting up to ``timeout`` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines:
                    if m := regex.search(line):
                        return m
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s "
                             f"(exit {self.proc.poll()}); output:\n{self.output()}")

    def wait_exit(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def worker_pids(self) -> dict[str, int]:
        with self._lock:
            return {m[1]: int(m[2]) for line in self.lines if (m := WORKER_LINE.search(line))
                    and "restart" not in line and "exited" not in line}

    def all_worker_pids(self) -> set[int]:
        """Every worker pid `up` printed: the first ones and those of restarts."""
        with self._lock:
            restarted = {int(m[2]) for line in self.lines if (m := RESTARTED_LINE.search(line))}
        return set(self.worker_pids().values()) | restarted

    def cleanup(self) -> None:
        """After a failure: stop `up` gently, then make sure nothing it started survives."""
        children: set[int] = set()
        if self.proc.poll() is None:
            children = _children(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        for pid in children | self.all_worker_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> set[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def kessai_up(tmp_path: Path, *args: str, host: str | None = None) -> Iterator[Up]:
    up = Up(tmp_path, *args, host=host)
    try:
        yield up
    finally:
        up.cleanup()


# The worker log line that shows which host ran the agent.
HOST_MARK = {"aiokafka": "kessai.host: [kessai-settlement]: Ready",
             "faust": "[^Worker]: Ready"}


@pytest.mark.parametrize("host", ["aiokafka", "faust"])
def test_up_demo_runs_one_worker_process_per_agent_and_every_scenario_ends_as_expected(
        tmp_path: Path, host: str) -> None:
    with kessai_up(tmp_path, "--demo", "--exit-after-demo", host=host) as up:
        try:
            code = up.wait_exit(DEMO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`kessai up --demo` still running after {DEMO_TIMEOUT_S}s:\n"
                        + up.output())
        out = up.output()
        assert code == 0, out
        assert f"created a development key set in {up.keys_dir}" in out
        assert f"bootstrap 127.0.0.1:{up.port}" in out

        pids = up.worker_pids()
        assert sorted(pids) == sorted(AGENTS), out
        assert len(set(pids.values())) == len(AGENTS), f"shared worker pids: {pids}"
        assert up.proc.pid not in pids.values()

        summary = out.split("\nsummary:\n", 1)[1].splitlines()
        scenarios = [line for line in summary if line.startswith("  ")]
        assert len(scenarios) == len(demo_purchases()), out
        for line in scenarios:
            assert line.rstrip().endswith(" ok"), line
        text = "\n".join(scenarios)
        for outcome in ("APPROVED", "DECLINED", "MISMATCH", "EXPIRED", "AUTH_FAILED"):
            assert outcome in text, (outcome, text)
        logs = list(tmp_path.glob(".kessai/runs/*/logs/settlement.log"))
        assert len(logs) == 1 and HOST_MARK[host] in logs[0].read_text(), logs

        # `kessai up` archived the run (issue 10), and its archive verifies clean.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KESSAI_")}
        audit = subprocess.run([sys.executable, "-m", "kessai.cli", "audit", "verify",
                                "--keys", str(up.keys_dir)], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert "OK: no discrepancy" in audit.stdout


def test_up_restarts_a_killed_worker_and_sigterm_stops_every_worker_and_the_broker(
        tmp_path: Path) -> None:
    with kessai_up(tmp_path) as up:
        up.wait_line(r"all workers ready", READY_TIMEOUT_S)
        pids = up.worker_pids()
        assert sorted(pids) == sorted(AGENTS), up.output()
        for name, pid in pids.items():  # each agent is its own `kessai worker NAME` process
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert cmdline[1:5] == [b"-m", b"kessai.cli", b"worker", name.encode()], cmdline

        old = pids["issuer"]
        os.kill(old, signal.SIGKILL)
        up.wait_line(rf"worker issuer \(pid {old}\) exited", 30)
        new = int(up.wait_line(r"worker issuer restarted \(pid (\d+)", 30)[1])
        assert new != old and alive(new)
        assert not alive(old)

        up.proc.send_signal(signal.SIGTERM)
        try:
            code = up.wait_exit(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`kessai up` still running {STOP_TIMEOUT_S}s after SIGTERM:\n"
                        + up.output())
        out = up.output()
        assert code == 0, out
        assert out.rstrip().splitlines()[-1].endswith("stopped"), out
        survivors = [pid for pid in up.all_worker_pids() if alive(pid)]
        assert survivors == [], f"worker processes still alive: {survivors}"
        assert new in up.all_worker_pids()
        assert not port_open("127.0.0.1", up.port), "the embedded broker still listens"
