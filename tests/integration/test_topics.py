"""Topic provisioning against the session broker: create, describe, list and their CLI."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable

import pytest

from kessai.broker import free_port
from kessai.cli import main
from kessai.settings import Settings
from topics import provision
from topics.catalogue import CATALOGUE, TopicSpec
from topics.provision import Report, broker_topics, create_all, describe, list_topics

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


def _spec(name: str, partitions: int, **kw: object) -> TopicSpec:
    return TopicSpec(name, "test key", partitions, ("test",), ("test",), "a test topic", **kw)


async def test_create_all_creates_missing_topics_once(
        settings: Settings, unique_topic_prefix: Callable[[str], str]) -> None:
    prefix = unique_topic_prefix("create")
    catalogue = [_spec(f"{prefix}.a", 2), _spec(f"{prefix}.b", 1, retention_ms=60_000)]

    first = await create_all(settings, catalogue)
    second = await create_all(settings, catalogue)

    assert [r.created for r in first] == [True, True]
    assert [r.created for r in second] == [False, False]
    assert [(r.exists, r.partitions) for r in second] == [(True, 2), (True, 1)]


async def test_create_all_on_a_provisioned_broker_creates_nothing(
        settings: Settings, provisioned: list[Report]) -> None:
    again = await create_all(settings)

    assert [r.topic for r in again] == [t.name for t in CATALOGUE]
    assert not any(r.created for r in again)
    assert all(r.exists and r.partitions == r.expected_partitions for r in again)


async def test_describe_reports_no_drift_after_create(
        settings: Settings, provisioned: list[Report]) -> None:
    reports = await describe(settings)

    assert [r.topic for r in reports] == [t.name for t in CATALOGUE]
    assert [r for r in reports if r.drift or not r.exists] == []


async def test_describe_finds_drift_and_creates_nothing(
        settings: Settings, unique_topic_prefix: Callable[[str], str]) -> None:
    prefix = unique_topic_prefix("drift")
    actual = _spec(f"{prefix}.a", 2)
    await create_all(settings, [actual])
    expected = [dataclasses.replace(actual, partitions=3, retention_ms=1234),
                _spec(f"{prefix}.missing", 1)]

    drifted, missing = await describe(settings, catalogue=expected)

    assert drifted.partitions == 2 and drifted.expected_partitions == 3
    assert any(d.startswith("partitions:") for d in drifted.drift)
    # A broker that does not report retention.ms leaves it unknown, which is not drift.
    reported = drifted.configs.get("retention.ms")
    assert any(d.startswith("retention.ms:") for d in drifted.drift) == (reported is not None)
    assert (missing.exists, missing.drift) == (False, ("missing",))
    # Describing must not create it: Tansu auto-creates topics named in metadata requests.
    assert f"{prefix}.missing" not in await broker_topics(settings)


async def test_list_marks_catalogue_membership(
        settings: Settings, provisioned: list[Report],
        unique_topic_prefix: Callable[[str], str]) -> None:
    extra = f"{unique_topic_prefix('list')}.x"
    await create_all(settings, [_spec(extra, 1)])

    listed = {r.topic: r for r in await list_topics(settings)}

    assert all(listed[t.name].in_catalogue for t in CATALOGUE)
    assert (listed[extra].in_catalogue, listed[extra].partitions) == (False, 1)


def test_cli_describe_json_is_one_object_per_topic(
        broker: str, provisioned: list[Report], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["topics", "describe", "--json", "--bootstrap", broker])

    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [o["topic"] for o in out] == [t.name for t in CATALOGUE]
    assert all(o["exists"] and o["drift"] == [] and o["in_catalogue"] for o in out)
    assert {o["partitions"] for o in out} <= {t.partitions for t in CATALOGUE}


def test_cli_describe_one_topic(
        broker: str, provisioned: list[Report], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["topics", "describe", "kessai.payment-results", "--json",
                 "--bootstrap", broker])

    (line,) = capsys.readouterr().out.splitlines()
    assert code == 0
    assert json.loads(line)["topic"] == "kessai.payment-results"


def test_cli_describe_exits_1_on_drift(
        broker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        unique_topic_prefix: Callable[[str], str]) -> None:
    missing = f"{unique_topic_prefix('cli-drift')}.missing"
    monkeypatch.setattr(provision, "CATALOGUE", (_spec(missing, 1),))

    code = main(["topics", "describe", "--bootstrap", broker])

    captured = capsys.readouterr()
    assert code == 1
    assert missing in captured.out and "missing" in captured.out
    assert "differ from the catalogue" in captured.err


def test_cli_create_table(
        broker: str, provisioned: list[Report], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["topics", "create", "--bootstrap", broker])

    out = capsys.readouterr().out
    assert code == 0
    assert f"0 topic(s) created, {len(CATALOGUE)} already existed" in out


def test_unreachable_bootstrap_is_one_line_and_exit_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"  # bound and released: nothing listens there
    started = time.monotonic()

    code = main(["topics", "list", "--bootstrap", bootstrap])

    err = capsys.readouterr().err
    assert code == 2
    assert time.monotonic() - started < 10
    assert len(err.strip().splitlines()) == 1
    assert bootstrap in err and "Traceback" not in err
