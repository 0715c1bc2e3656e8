"""`kessai broker` and `kessai up`: the embedded broker, topics, and one process per agent.

`up` supervises its workers: a worker that exits unexpectedly is reported and restarted (with
a growing pause if it keeps failing); Ctrl-C or SIGTERM stops workers (all at once, so the stop
takes as long as the slowest worker, not their sum), then the broker, and `up` exits 0. Each
worker is told the supervisor's pid (:mod:`kessai.lifeline`) and ends itself if the supervisor
dies without stopping it.

The supervisor knows agents only by name and keys only through the generator it is handed:
the CLI (:mod:`kessai.cli`) composes which agents run, with which worker flags, and which key
set is made on first use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kessai import keys, lifeline
from kessai.broker import EmbeddedBroker, wait_reachable
from kessai.errors import ConfigError, KessaiError
from kessai.settings import Settings

# Both hosts log it once the first assignment is in and running: faust "[^Worker]: Ready",
# the aiokafka host "[kessai-<agent>]: Ready" (kessai.aiokafka_host.READY).
READY_MARK = "Ready"
# On Ctrl-C/SIGTERM workers get this long (together) to stop cleanly, then are killed; they
# usually need ~1 s. With the broker's stop after them, `up` is gone within 10 s.
STOP_GRACE_S = 5.0


def say(msg: str) -> None:
    print(f"kessai: {msg}", flush=True)


def run_broker(port: int) -> int:
    broker = EmbeddedBroker(port)
    broker.start()
    say(f"embedded broker (Tansu, memory storage) serving {broker.bootstrap}; Ctrl-C stops it")
    stop = _StopFlag()
    try:
        while broker.running() and not stop.set:
            time.sleep(0.3)
    finally:
        broker.stop()
    return 0


class _StopFlag:
    def __init__(self) -> None:
        self.set = False
        signal.signal(signal.SIGTERM, self._on)
        signal.signal(signal.SIGINT, self._on)

    def _on(self, *_: object) -> None:
        self.set = True


@dataclass
class WorkerProc:
    agent: str
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)
    worker_args: tuple[str, ...] = ()  # after `kessai worker AGENT`, e.g. ("--sim",)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Its own session: Ctrl-C in a terminal reaches only the supervisor, which stops the
        # workers itself. The lifeline pid lets a worker end itself if the supervisor dies.
        env = {**self.env, lifeline.ENV_VAR: str(os.getpid())}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kessai.cli", "worker", self.agent, *self.worker_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        self.started_at = time.monotonic()

    def ready(self) -> bool:
        try:
            return READY_MARK in self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        stop_all([self], timeout)


def stop_all(workers: list[WorkerProc], timeout: float = STOP_GRACE_S) -> None:
    """SIGTERM every running worker at once, wait up to ``timeout`` in all, kill the rest."""
    running = [w.proc for w in workers if w.proc is not None and w.proc.poll() is None]
    for proc in running:
        proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def parse_replicas(spec: str | None, agents: Sequence[str],
                   single: Sequence[str] = ()) -> dict[str, int]:
    """Workers per agent type from ``settlement=2,issuer=2`` (every other agent: one).

    Workers of one type share its consumer group, so they split its partitions (the unit of
    parallelism: at most as many busy workers as the topics have partitions). ``single`` names
    agents that cannot run twice on one machine (they listen on a fixed port).
    """
    counts = dict.fromkeys(agents, 1)
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, n = part.strip().partition("=")
        if not sep or not n.strip().isdigit() or int(n) < 1:
            raise ConfigError(f"--replicas: expected AGENT=N with N ≥ 1, got {part.strip()!r} "
                              "(for example --replicas settlement=2)")
        name = name.strip()
        if name not in counts:
            raise ConfigError(f"--replicas: {name!r} is not among the agents started "
                              f"({', '.join(agents)})")
        if int(n) > 1 and name in single:
            raise ConfigError(f"--replicas: {name} listens on one fixed port; run one")
        counts[name] = int(n)
    return counts


def worker_names(agents: Sequence[str], replicas: dict[str, int]) -> list[tuple[str, str]]:
    """(agent, label) per worker process; the label names its log (``settlement-2``)."""
    out = []
    for agent in agents:
        n = replicas.get(agent, 1)
        out += [(agent, agent if n == 1 else f"{agent}-{i}") for i in range(1, n + 1)]
    return out


def demo_profile(settings: Settings) -> Settings:
    """Short lifetimes so the demo shows an EXPIRED order within seconds (unless set in env)."""
    changes = {}
    if not os.environ.get("KESSAI_T_FIRST_MS"):
        changes["t_first_ms"] = 8_000
    if not os.environ.get("KESSAI_T_SECOND_MS"):
        changes["t_second_ms"] = 8_000
    return settings.with_(**changes)


def up(args: argparse.Namespace, settings: Settings, *, agents: Sequence[str],
       make_keys: keys.Generator, worker_args: Sequence[str] = (),
       single: Sequence[str] = ()) -> int:
    """Run ``agents`` (names for `kessai worker`, each started with ``worker_args``) on the
    embedded broker or ``--bootstrap``; ``make_keys`` creates the key set if there is none.
    ``--replicas AGENT=N`` runs N workers of an agent type (not of those in ``single``)."""
    names = list(agents) if not args.agents else [a.strip() for a in args.agents.split(",")]
    unknown = [n for n in names if n not in agents]
    if unknown:
        raise ConfigError(f"unknown agent(s) {', '.join(unknown)}; known: {', '.join(agents)}")
    replicas = parse_replicas(getattr(args, "replicas", None), names, single)
    stop = _StopFlag()  # from here on, SIGTERM and Ctrl-C stop `up` through the finally below
    if keys.ensure(settings.keys_dir, make_keys):
        say(f"created a development key set in {settings.keys_dir}")
    if args.demo:
        settings = demo_profile(settings)

    broker: EmbeddedBroker | None = None
    external = bool(args.bootstrap or os.environ.get("KESSAI_BOOTSTRAP"))
    run_dir = settings.data_dir / "runs" / time.strftime("%Y%m%d-%H%M%S")
    if not external:
        broker = EmbeddedBroker(args.port, log_path=None)
        broker.start()
        settings = settings.with_(bootstrap=broker.bootstrap, data_dir=run_dir)
    else:
        settings = settings.with_(data_dir=run_dir)
        wait_reachable(settings.bootstrap)
    workers: list[WorkerProc] = []
    try:
        say(f"bootstrap {settings.bootstrap}"
            + (" (embedded Tansu broker, memory storage)" if broker else ""))
        from topics.provision import create_all

        created = asyncio.run(create_all(settings))
        say(f"topics ready ({sum(1 for r in created if r.created)} created)")
        say(f"run directory {settings.data_dir} (worker logs, stores and the audit archive, "
            "archive.sqlite: `kessai audit verify` checks the newest run's)")
        env = {**os.environ, **settings.child_env()}
        for name, label in worker_names(names, replicas):
            if stop.set:
                break
            w = WorkerProc(name, settings.data_dir / "logs" / f"{label}.log", env,
                           worker_args=tuple(worker_args))
            w.start()
            workers.append(w)
            assert w.proc is not None
            say(f"worker {label:<13} pid {w.proc.pid}  log {w.log_path}")
        _wait_ready(workers, stop)
        say("all workers ready" if not stop.set else "stopping")
        if args.demo and not stop.set:
            _run_demo(settings, stop)
            if args.exit_after_demo:
                return 0
        if not stop.set:
            say("running; Ctrl-C stops everything")
        _supervise(workers, stop)
        return 0
    finally:
        stop_all(workers)
        if broker is not None:
            broker.stop()
        say("stopped")


def _run_demo(settings: Settings, stop: _StopFlag) -> None:
    """The demo (`kessai demo` on these settings) as a child process, so that SIGTERM or Ctrl-C
    need not wait for it: it is ended first, which closes its Kafka connections, and the
    workers and the broker stop as quickly as without it."""
    demo = subprocess.Popen([sys.executable, "-m", "kessai.cli", "demo"],
                            env={**os.environ, **settings.child_env()}, stdin=subprocess.DEVNULL)
    try:
        while demo.poll() is None and not stop.set:
            time.sleep(0.2)
    finally:
        if demo.poll() is None:
            demo.terminate()
            try:
                demo.wait(3)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait(5)
    if not stop.set and demo.returncode not in (0, 1):  # 1: some scenario ended unexpectedly
        raise KessaiError(f"the demo failed (exit code {demo.returncode}; see above)")


def _wait_ready(workers: list[WorkerProc], stop: _StopFlag, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not stop.set and time.monotonic() < deadline:
        _restart_dead(workers)
        if all(w.ready() for w in workers):
            return
        time.sleep(0.3)
    if not stop.set:
        late = [w.agent for w in workers if not w.ready()]
        say(f"warning: not ready after {timeout:.0f}s: {', '.join(late)} (see their logs)")


def _restart_dead(workers: list[WorkerProc]) -> None:
    now = time.monotonic()
    for w in workers:
        if w.proc is None or w.proc.poll() is None:
            continue
        if w.next_start == 0.0:
            # Keep failing workers from spinning: 1 s, 2 s, 4 s ... up to 30 s.
            delay = min(30.0, 2.0 ** min(w.restarts, 5))
            w.next_start = now + delay
            say(f"worker {w.agent} (pid {w.proc.pid}) exited with code {w.proc.returncode}; "
                f"restarting in {delay:.0f}s")
        elif now >= w.next_start:
            w.restarts += 1
            w.next_start = 0.0
            w.start()
            assert w.proc is not None
            say(f"worker {w.agent} restarted (pid {w.proc.pid}, restart #{w.restarts})")


def _supervise(workers: list[WorkerProc], stop: _StopFlag) -> None:
    while not stop.set:
        _restart_dead(workers)
        time.sleep(0.3)
