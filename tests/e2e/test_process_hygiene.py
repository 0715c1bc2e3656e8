"""Process hygiene (issue 6, item 8): no worker outlives its `kessai up`, and `kessai up` stops
cleanly and quickly on SIGTERM (DESIGN §4).

Workers run in their own sessions, so neither a terminal's Ctrl-C nor a process-group kill
reaches them: when the supervisor dies by SIGKILL, only the worker's lifeline
(:mod:`kessai.lifeline`) can end it. The first tests here check the lifeline's decision logic and
its mechanism on tiny stand-in processes (no broker, a few seconds); the e2e ones run the real
`kessai up`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents import AGENTS
from kessai import lifeline
from kessai.broker import port_open
from kessai.errors import ConfigError
from kessai.lifeline import Watch, process_exists, supervisor_gone, watch_for
from tests.e2e.test_up import READY_TIMEOUT_S, Up

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

STOP_BUDGET_S = 10.0  # `kessai up` must be gone this long after SIGTERM
ORPHAN_BUDGET_S = 10.0  # its workers must be gone this long after it was SIGKILLed
WORKER_LOG_LINE = re.compile(r"worker (\S+)\s+pid (\d+)\s+log (\S+)")


# --- processes, from /proc (independent of kessai.lifeline) ---------------------------------

def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields from the state on (index 0 = state, 1 = ppid, 3 = session,
    19 = start time), or None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


class Proc:
    """A process identified by pid and start time, so a reused pid is not mistaken for it."""

    def __init__(self, pid: int) -> None:
        fields = _stat(pid)
        assert fields is not None, f"no process {pid}"
        self.pid, self.session, self.start = pid, int(fields[3]), fields[19]
        self.cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")

    def running(self) -> bool:
        """Not exited: a zombie (exited, not yet reaped by whoever inherited it) is not running."""
        fields = _stat(self.pid)
        return fields is not None and fields[19] == self.start and fields[0] not in ("Z", "X")

    def kill(self) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def __repr__(self) -> str:
        return f"{self.pid} {b' '.join(self.cmdline[1:5]).decode(errors='replace')}"


def children(pid: int) -> list[Proc]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(int(stat.parent.name))
        if fields is not None and int(fields[1]) == pid:
            with contextlib.suppress(AssertionError, OSError):
                out.append(Proc(int(stat.parent.name)))
    return out


def wait_gone(procs: list[Proc], timeout: float) -> tuple[float, list[Proc]]:
    """Seconds until none of ``procs`` runs (polling every 50 ms), and those still running."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not any(p.running() for p in procs):
            break
        time.sleep(0.05)
    return time.monotonic() - t0, [p for p in procs if p.running()]


# --- the decision logic ---------------------------------------------------------------------

def test_no_supervisor_variable_means_nothing_to_watch() -> None:
    assert watch_for(None, 4321) is None
    assert watch_for("", 4321) is None
    assert watch_for("  ", 4321) is None


def test_supervisor_variable_must_be_a_process_id() -> None:
    for bad in ("abc", "12x", "0", "1", "-5"):
        with pytest.raises(ConfigError, match=lifeline.ENV_VAR):
            watch_for(bad, 4321)


def test_a_direct_child_watches_its_parent_and_ignores_pid_existence() -> None:
    watch = watch_for("4321", ppid=4321)
    assert watch == Watch(4321, direct=True)
    assert not supervisor_gone(watch, ppid=4321, exists=True)
    assert supervisor_gone(watch, ppid=1, exists=False)  # reparented to init
    assert supervisor_gone(watch, ppid=777, exists=True)  # to a subreaper; pid 4321 reused


def test_a_worker_not_started_by_its_supervisor_watches_the_pid() -> None:
    watch = watch_for("4321", ppid=999)  # a wrapper in between, or started after it died
    assert watch == Watch(4321, direct=False)
    assert not supervisor_gone(watch, ppid=999, exists=True)
    assert supervisor_gone(watch, ppid=999, exists=False)
    assert supervisor_gone(watch, ppid=1, exists=False)


@needs_proc
def test_process_exists_counts_a_zombie_as_gone() -> None:
    assert process_exists(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while (_stat(child.pid) or ["?"])[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.02)  # exited, not reaped: a zombie
        assert (_stat(child.pid) or ["?"])[0] == "Z"
        assert not process_exists(child.pid)
    finally:
        child.wait()
    assert not process_exists(child.pid)


# --- the mechanism, on stand-in processes ---------------------------------------------------

WORKER = textwrap.dedent("""
    import signal, sys, time
    from kessai.lifeline import watch_supervisor
    if sys.argv[1] == "ignore-sigterm":  # a clean shutdown that hangs
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    watch_supervisor(poll_s=0.1, grace_s=1.0)
    print("watching", flush=True)
    time.sleep(600)
""")

SUPERVISOR = textwrap.dedent("""
    import os, subprocess, sys, time
    env = {**os.environ, sys.argv[1]: str(os.getpid())}
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[2], sys.argv[3]], env=env,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert worker.stdout.readline() == "watching\\n"
    print(worker.pid, flush=True)
    time.sleep(600)
""")


@contextlib.contextmanager
def stand_in_supervisor(mode: str) -> Iterator[tuple[subprocess.Popen[str], Proc]]:
    """A process that starts a lifeline-watching worker (in its own session, like `up` does)."""
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR, lifeline.ENV_VAR, WORKER, mode],
                           stdout=subprocess.PIPE, text=True)
    worker: Proc | None = None
    try:
        assert sup.stdout is not None
        worker = Proc(int(sup.stdout.readline()))
        yield sup, worker
    finally:
        sup.kill()
        sup.wait()
        if sup.stdout is not None:
            sup.stdout.close()
        if worker is not None:
            worker.kill()


@needs_proc
def test_stand_in_worker_lives_with_its_supervisor_and_stops_soon_after_its_sigkill() -> None:
    with stand_in_supervisor("plain") as (sup, worker):
        time.sleep(1.0)  # ten polls of a live supervisor: no false alarm
        assert worker.running()
        assert worker.session != os.getsid(sup.pid)
        sup.kill()
        sup.wait()
        took, left = wait_gone([worker], 5.0)
        assert left == [], "the worker outlived its SIGKILLed supervisor"
        assert took < 1.0, f"worker took {took:.2f}s to stop"


@needs_proc
def test_stand_in_worker_whose_clean_stop_hangs_ends_hard_after_the_grace() -> None:
    with stand_in_supervisor("ignore-sigterm") as (sup, worker):
        sup.kill()
        sup.wait()
        took, left = wait_gone([worker], 5.0)
        assert left == [], "a worker ignoring SIGTERM outlived its supervisor"
        assert 1.0 <= took < 2.5, f"worker ended {took:.2f}s after (grace 1.0s)"


@needs_proc
def test_stand_in_worker_watching_a_pid_that_is_not_its_parent() -> None:
    other = subprocess.Popen(["sleep", "600"])
    env = {**os.environ, lifeline.ENV_VAR: str(other.pid)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, "plain"], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "watching\n"
        time.sleep(0.5)
        assert worker.poll() is None
        other.kill()  # and not reaped yet: a zombie must count as gone
        worker.wait(5)
    finally:
        worker.kill()
        worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()
        other.kill()
        other.wait()


# --- the real `kessai up` -------------------------------------------------------------------

def _start_up(tmp_path: Path, *args: str) -> tuple[Up, list[Proc], list[Proc]]:
    """`kessai up` with every worker ready: it, its worker processes, its other children."""
    up = Up(tmp_path, *args)
    up.wait_line(r"all workers ready", READY_TIMEOUT_S)
    tree = children(up.proc.pid)
    workers = [p for p in tree if p.cmdline[1:4] == [b"-m", b"kessai.cli", b"worker"]]
    assert sorted(p.pid for p in workers) == sorted(up.worker_pids().values()), (tree, up.output())
    assert len(workers) == len(AGENTS)
    sup_session = os.getsid(up.proc.pid)
    assert all(p.session != sup_session for p in workers)  # out of reach of a group kill
    return up, workers, [p for p in tree if p not in workers]


@pytest.mark.e2e
@needs_proc
def test_every_worker_exits_soon_after_kessai_up_is_killed_with_sigkill(
        tmp_path: Path) -> None:
    up, workers, others = _start_up(tmp_path)
    try:
        up.proc.send_signal(signal.SIGKILL)
        up.proc.wait(10)
        took, left = wait_gone(workers, ORPHAN_BUDGET_S + 10)
        print(f"\nworkers gone {took:.2f}s after SIGKILL of `kessai up`")
        assert left == [], f"workers outlived their SIGKILLed supervisor: {left}"
        assert took <= ORPHAN_BUDGET_S, f"workers took {took:.1f}s to exit"
        # `up` ran in tmp_path and prints log paths relative to it
        logs = {m[1]: tmp_path / m[3] for line in up.output().splitlines()
                if (m := WORKER_LOG_LINE.search(line))}
        assert sorted(logs) == sorted(AGENTS), up.output()
        for agent, log in logs.items():  # the lifeline acted, through the clean shutdown
            text = log.read_text(errors="replace")
            assert f"supervisor (pid {up.proc.pid}) is gone" in text, (agent, text[-2000:])
            assert (f"kessai.host: {agent}: stopping" in text  # the aiokafka host
                    or "[^Worker]: Stopping..." in text), (agent, text[-2000:])  # faust's
            if "exiting now" in text:  # allowed (a very loaded machine), but worth seeing
                print(f"{agent}: clean shutdown exceeded the lifeline's grace")
    finally:
        for p in workers + others:  # the embedded broker is orphaned too (not a worker)
            p.kill()
        up.cleanup()


def _sigterm_stops_up_in_budget(tmp_path: Path, *args: str, when: str) -> None:
    up, workers, others = _start_up(tmp_path, *args)
    try:
        up.wait_line(when, 60)
        t0 = time.monotonic()
        up.proc.send_signal(signal.SIGTERM)
        try:
            code = up.wait_exit(STOP_BUDGET_S + 20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`kessai up` still running {STOP_BUDGET_S + 20}s after SIGTERM:\n"
                        + up.output())
        took = time.monotonic() - t0
        print(f"\n`kessai up {' '.join(args)}` exited {took:.2f}s after SIGTERM")
        out = up.output()
        assert code == 0, out
        assert took <= STOP_BUDGET_S, f"`kessai up` took {took:.1f}s to stop:\n{out}"
        assert "kessai: stopped" in out.splitlines(), out
        survivors = [p for p in workers + others if p.running()]
        assert survivors == [], f"still running after `kessai up` exited: {survivors}"
        assert not port_open("127.0.0.1", up.port), "the embedded broker still listens"
    finally:
        for p in workers + others:
            p.kill()
        up.cleanup()


@pytest.mark.e2e
@needs_proc
def test_sigterm_stops_kessai_up_within_10s_with_exit_0_and_no_worker_left(
        tmp_path: Path) -> None:
    _sigterm_stops_up_in_budget(tmp_path, when=r"running; Ctrl-C stops everything")


@pytest.mark.e2e
@needs_proc
def test_sigterm_during_the_demo_stops_kessai_up_within_10s(tmp_path: Path) -> None:
    """The demo runs up to 45 s; SIGTERM must not wait for it. Sent once the first purchase is
    done, with the demo's own Kafka clients connected and its expiry scenario still pending."""
    _sigterm_stops_up_in_budget(tmp_path, "--demo",
                                when=r"^  .+: (APPROVED|DECLINED|MISMATCH|AUTH_FAILED) / ")
