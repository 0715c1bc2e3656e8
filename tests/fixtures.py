"""Session fixtures: one throwaway broker, one development key set, settings pointing at both.

The broker is, in order of preference: an external one named by ``KESSAI_TEST_BOOTSTRAP``, a
testcontainers Kafka if a Docker engine answers, else the embedded Tansu on a free loopback
port. Tests share it, so each one names its own topics and correlation ids.
"""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiosqlite
import pytest

from kessai.broker import EmbeddedBroker
from kessai.clock import FakeClock
from kessai.membus import MemoryBus
from kessai.settings import Settings
from sim import devkeys
from topics.provision import Report, create_all

DOCKER_PING_TIMEOUT_S = 2


def _docker_answers() -> bool:
    """True if a Docker engine answers a ping quickly; any failure means no."""
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_PING_TIMEOUT_S)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no daemon, a refused or slow ping: all mean no
        return False


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """Bootstrap ``HOST:PORT`` of this session's broker, stopped at session end if ours."""
    external = os.environ.get("KESSAI_TEST_BOOTSTRAP")
    if external:
        yield external
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        with EmbeddedBroker() as embedded:
            yield embedded.bootstrap


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development key set made for this session."""
    directory = tmp_path_factory.mktemp("keys")
    devkeys.init(directory)
    return directory


@pytest.fixture(scope="session")
def settings(broker: str, keys_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the session broker, key set and a fresh data directory."""
    return Settings(bootstrap=broker, keys_dir=keys_dir, data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture
def unique_topic_prefix() -> Callable[[str], str]:
    """Factory of topic-name prefixes no other test (or earlier run) uses."""

    def make(label: str = "t") -> str:
        return f"kessai-test.{label}.{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
async def settlement_bus(keys_dir: Path, tmp_path: Path) -> AsyncIterator[MemoryBus]:
    """The settlement server and the issuer on the in-memory bus, on a fake clock
    (``settlement_bus.clock``); stopped after the test (the issuer's ledger is an aiosqlite
    connection)."""
    from tests.agents import agent_module

    bus = MemoryBus(Settings(keys_dir=keys_dir, data_dir=tmp_path), FakeClock())
    bus.add_module("settlement", agent_module("settlement"))
    bus.add_module("issuer", agent_module("issuer"))
    yield bus
    await bus.stop()


@pytest.fixture(scope="session")
async def provisioned(settings: Settings) -> list[Report]:
    """Every catalogued topic exists on the session broker (created once)."""
    return await create_all(settings)


# Every aiosqlite connection the suite opens, so a test that leaves one open fails itself. An
# open connection keeps a thread that, once the connection is collected after its event loop
# closed, raises into whichever later test is running (seen as a failure of an unrelated test
# when pytest-xdist changed the order).
_OPENED: weakref.WeakSet[aiosqlite.Connection] = weakref.WeakSet()
_connection_init = aiosqlite.Connection.__init__


def _tracked_init(self: aiosqlite.Connection, *args: object, **kwargs: object) -> None:
    _connection_init(self, *args, **kwargs)  # type: ignore[arg-type]
    _OPENED.add(self)


aiosqlite.Connection.__init__ = _tracked_init  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def no_sqlite_left_open() -> Iterator[None]:
    """Fails the test (after its own fixtures are torn down) that opened an aiosqlite
    connection and did not close it."""
    before = set(_OPENED)
    yield
    left = [c for c in _OPENED if c not in before and c._connection is not None]
    for c in left:
        c.stop()  # one failure, not a thread that breaks a later test too
    assert not left, (f"{len(left)} aiosqlite connection(s) opened in this test were not "
                      "closed (close the store, or stop the MemoryBus)")
