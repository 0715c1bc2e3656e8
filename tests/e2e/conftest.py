"""A running kessai: every agent as its own worker process on the session broker, as
`kessai up` runs them (``--sim``: the simulator's shop, which overcharges when a test asks).

Lifetimes are short so expiry can be observed, and long enough that a worker restart fits
inside them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents import AGENTS
from kessai.settings import Settings
from kessai.supervisor import WorkerProc, stop_all
from tests.e2e.wakeup_world import WAKEUP_ENV
from tests.workunits import SYSTEM_MODULES
from topics.provision import create_all

E2E_TIMINGS = {
    "t_first_ms": 12_000,
    "t_second_ms": 5_000,
    "t_authorize_ms": 3_000,
    "result_redelivery_ms": 1_500,
}


# Modules whose tests bring their own broker and workers (`kessai up`, `kessai bench`, the
# bench's system). In one process they run before every other e2e test, so the package's
# `system` (created on first use) does not yet idle beside them taking a share of the two
# cores. Split over pytest-xdist's workers (tests/workunits.py), the modules on the `system`
# come first instead: they are the longest unit, and the other worker takes these modules and
# the unit tests meanwhile.
OWN_SYSTEM_MODULES = ("test_bench.py", "test_process_hygiene.py", "test_replicas.py",
                      "test_up.py", "test_wheel_install.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    e2e = [i for i, item in enumerate(items) if item.path.parent == here]
    if not e2e:
        return
    block = [items[i] for i in e2e]
    strays = sorted({item.path.name for item in block
                     if "system" in getattr(item, "fixturenames", ())} - set(SYSTEM_MODULES))
    if strays:
        raise pytest.UsageError(f"{', '.join(strays)} use the running system: add them to "
                                "SYSTEM_MODULES in tests/workunits.py")
    if hasattr(config, "workerinput"):  # a pytest-xdist worker
        first = [item for item in block if item.path.name in SYSTEM_MODULES]
    else:
        first = [item for item in block if item.path.name in OWN_SYSTEM_MODULES]
    rest = [item for item in block if item not in first]
    for i, item in zip(e2e, first + rest, strict=True):
        items[i] = item


@dataclass
class System:
    settings: Settings
    workers: dict[str, WorkerProc]
    relay_url: str = ""  # the relay's HTTP server 43 (seeds 000/001)
    shop_url: str = ""  # the shop's HTTP front (①②)

    def kill(self, agent: str) -> None:
        """kill -9: no clean shutdown, no final commit."""
        w = self.workers[agent]
        assert w.proc is not None
        w.proc.kill()
        w.proc.wait(10)

    def start(self, agent: str, timeout: float = 60.0) -> None:
        w = self.workers[agent]
        w.log_path.write_text("")  # the ready mark must come from this start
        w.start()
        wait_ready([w], timeout)

    def logs(self) -> dict[str, str]:
        return {n: w.log_path.read_text(errors="replace") for n, w in self.workers.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(workers: list[WorkerProc], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [w.agent for w in workers if w.proc is not None and w.proc.poll() is not None]
        if dead:
            raise RuntimeError(f"worker(s) {dead} exited during start; see their logs")
        if all(w.ready() for w in workers):
            return
        time.sleep(0.2)
    raise TimeoutError(f"workers not ready after {timeout}s")


# Package scope: only tests/e2e uses it, and its idle workers (and the broker they poll) would
# otherwise take a share of the cores through every test collected after the e2e ones.
@pytest.fixture(scope="package")
def system(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    s = settings.with_(data_dir=Path(tmp_path_factory.mktemp("system")), **E2E_TIMINGS)
    # In a thread: the first test to ask for the system may already run an event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create_all(s)).result()
    relay_port, shop_port = free_port(), free_port()
    env = {**os.environ, **s.child_env(), "KESSAI_SHOP_POLL_MS": "1000",
           "KESSAI_SHOP_RESULT_WAIT_MS": "5000",
           "KESSAI_RELAY_PORT": str(relay_port), "KESSAI_SHOP_HTTP_PORT": str(shop_port),
           "KESSAI_DEVICE_HTTP_PORT": str(free_port()),
           "KESSAI_SELECTOR_PORT": str(free_port()), "KESSAI_WEBSHOP_PORT": str(free_port()),
           **WAKEUP_ENV}
    workers = {name: WorkerProc(name, s.data_dir / "logs" / f"{name}.log", env,
                                worker_args=("--sim",))
               for name in AGENTS}
    for w in workers.values():
        w.start()
    try:
        wait_ready(list(workers.values()))
        yield System(s, workers, f"http://127.0.0.1:{relay_port}",
                     f"http://127.0.0.1:{shop_port}")
    finally:
        # All at once (one after another, each worker's ~1 s clean stop added up).
        stop_all(list(workers.values()), timeout=15.0)
