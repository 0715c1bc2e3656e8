"""The system a bench measures: its own (embedded broker, topics, a temporary key set and data
directory, one worker process per agent), or one that already runs at ``--bootstrap``.

Built from the same pieces as ``kessai up`` (:class:`kessai.broker.EmbeddedBroker`,
:func:`topics.provision.create_all`, :class:`kessai.supervisor.WorkerProc`, the development
key set and the simulator's agent variants, ``--sim``), without its supervision loop: a
worker that dies during a bench is an error, not something to restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kessai import keys
from kessai.broker import EmbeddedBroker, free_port, wait_reachable
from kessai.errors import ConfigError, KessaiError
from kessai.settings import Settings
from kessai.supervisor import WorkerProc, worker_names
from sim import cpu, devkeys

BENCH_LIMIT_MINOR = 10**15  # the bench's own cards never hit a credit limit
SIM_WORKER_ARGS = ("--sim",)  # the development system's agents, as `kessai up` runs them


class BenchError(KessaiError):
    """The bench could not bring up or keep the system it measures."""

    code = "bench"


def unlimited_cards(keys_dir: Path) -> None:
    """Give every issuer account of a (temporary) dev key set a limit no bench reaches, so a
    long run is not declined for the credit limit (the dev cards hold ¥1,000,000 at most)."""
    path = keys_dir / "actors" / "issuer.json"
    data = json.loads(path.read_text())
    for account in data.get("accounts", []):
        account["limit"] = BENCH_LIMIT_MINOR
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))


@dataclass
class System:
    settings: Settings
    own: bool  # started by the bench (and stopped by it)
    workers: list[WorkerProc] = field(default_factory=list)
    broker: EmbeddedBroker | None = None
    tmp: Path | None = None
    keep: bool = False

    def pids(self) -> dict[str, int]:
        """Every process to account CPU to: workers by agent name, and the broker."""
        if self.own:
            named: dict[str, int] = {}
            for w in self.workers:
                if w.proc is not None:
                    name, n = w.agent, 1
                    while name in named:
                        n += 1
                        name = f"{w.agent}#{n}"
                    named[name] = w.proc.pid
        else:
            named = cpu.find_workers(self.settings.bootstrap)
        broker = cpu.find_broker(self.settings.bootstrap)
        if broker is not None:
            named["broker"] = broker
        return named

    def agents(self) -> list[str]:
        """The agent types of the system's workers (all known ones for a running system)."""
        if self.own:
            return list(dict.fromkeys(w.agent for w in self.workers))
        from agents import AGENTS

        return list(AGENTS)

    def dead_workers(self) -> list[str]:
        return [w.agent for w in self.workers if w.proc is not None and w.proc.poll() is not None]

    def log_dir(self) -> Path | None:
        return self.settings.data_dir / "logs" if self.own else None

    def stop(self, failed: bool = False) -> None:
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.terminate()
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                w.proc.wait(10)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(5)
        if self.broker is not None:
            self.broker.stop()
        if self.tmp is not None and not (self.keep or failed):
            shutil.rmtree(self.tmp, ignore_errors=True)


def external(settings: Settings) -> System:
    """A running system: the broker must answer and the key set must be there."""
    wait_reachable(settings.bootstrap, timeout_s=5)
    keys.load_registry(settings.keys_dir)
    keys.load_actor(settings.keys_dir, "operator")
    return System(settings, own=False)


def start_own(settings: Settings, agents: list[str], *, keep: bool = False,
              say: Callable[[str], None] = lambda _: None,
              ready_timeout_s: float = 120.0, replicas: dict[str, int] | None = None) -> System:
    """Broker on a free loopback port, topics, temporary keys and data, one worker per agent
    (``replicas``: more of some, as ``kessai up --replicas``).

    Raises BenchError (with the log directory) if a worker exits or is not ready in time.
    """
    tmp = Path(tempfile.mkdtemp(prefix="kessai-bench-"))
    system = System(settings, own=True, tmp=tmp, keep=keep)
    try:
        devkeys.init(tmp / "keys")
        unlimited_cards(tmp / "keys")
        broker = EmbeddedBroker(free_port(), log_path=tmp / "broker.log")
        system.broker = broker
        broker.start()
        settings = settings.with_(bootstrap=broker.bootstrap, keys_dir=tmp / "keys",
                                  data_dir=tmp / "data")
        system.settings = settings
        say(f"embedded broker on {broker.bootstrap}; data and logs in {tmp}")
        from topics.provision import create_all

        asyncio.run(create_all(settings))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("KESSAI_")},
               **settings.child_env(),
               # Own HTTP ports: a `kessai up` on this machine keeps its defaults.
               "KESSAI_SHOP_HTTP_PORT": str(free_port()), "KESSAI_RELAY_PORT": str(free_port()),
               "KESSAI_DEVICE_HTTP_PORT": str(free_port()),
               "KESSAI_SELECTOR_PORT": str(free_port()),
               "KESSAI_WEBSHOP_PORT": str(free_port())}
        for name, label in worker_names(agents, replicas or {}):
            w = WorkerProc(name, settings.data_dir / "logs" / f"{label}.log", env,
                           worker_args=SIM_WORKER_ARGS)
            w.start()
            system.workers.append(w)
        _wait_ready(system, ready_timeout_s)
        say(f"{len(agents)} workers ready: {', '.join(agents)}")
        return system
    except BaseException:
        system.stop(failed=True)
        raise


def _wait_ready(system: System, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dead = system.dead_workers()
        if dead:
            raise BenchError(f"worker(s) {', '.join(dead)} exited during start; see their logs "
                             f"in {system.log_dir()}")
        if all(w.ready() for w in system.workers):
            return
        time.sleep(0.2)
    late = [w.agent for w in system.workers if not w.ready()]
    raise BenchError(f"worker(s) {', '.join(late)} not ready after {timeout_s:.0f}s; see their "
                     f"logs in {system.log_dir()}")


# The agents a bench purchase passes through (seed 003, via the terminal). The other agents
# take no part in it; started anyway they would only add their idle polling to the figures.
BENCH_AGENTS = ("settlement", "issuer", "shop", "terminal")


def check_agents(spec: str | None, default: tuple[str, ...] | None = None) -> list[str]:
    from agents import AGENTS

    if not spec:
        return list(default or AGENTS)
    names = [a.strip() for a in spec.split(",") if a.strip()]
    unknown = [n for n in names if n not in AGENTS]
    if unknown or not names:
        raise ConfigError(f"--agents: unknown agent(s) {', '.join(unknown) or '(none given)'}; "
                          f"known: {', '.join(AGENTS)}")
    return names
