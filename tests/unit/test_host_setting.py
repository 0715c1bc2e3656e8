"""Which host a worker runs its agent on: ``KESSAI_HOST`` (aiokafka by default, faust on
request), passed on to the workers `kessai up` starts, and refused with a clear error when
unknown."""

from __future__ import annotations

from pathlib import Path

import pytest

from kessai import worker
from kessai.aiokafka_host import AiokafkaHost
from kessai.errors import ConfigError
from kessai.runtime import FaustHost
from kessai.settings import Settings
from tests.agents import agent_module


def test_the_default_host_is_aiokafka_and_faust_can_be_chosen(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KESSAI_HOST", raising=False)
    assert Settings.from_env().host == "aiokafka"
    monkeypatch.setenv("KESSAI_HOST", "Faust")
    assert Settings.from_env().host == "faust"


def test_a_worker_inherits_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KESSAI_HOST", "faust")
    parent = Settings.from_env()
    monkeypatch.delenv("KESSAI_HOST")
    for name, value in parent.child_env().items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env().host == "faust"


def test_an_unknown_host_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KESSAI_HOST", "kafka-streams")
    with pytest.raises(ConfigError, match="KESSAI_HOST"):
        Settings.from_env()


@pytest.mark.parametrize(("host", "kind"), [("aiokafka", AiokafkaHost), ("faust", FaustHost)])
def test_the_worker_builds_its_agent_on_the_chosen_host(
        host: str, kind: type, keys_dir: Path, tmp_path: Path) -> None:
    settings = Settings(keys_dir=keys_dir, data_dir=tmp_path, host=host)
    ctx = worker.build("settlement", agent_module("settlement"), settings)
    assert isinstance(ctx.host, kind)
    assert "kessai.settlement.first" in ctx.routes.topics()
