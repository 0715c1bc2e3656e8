"""The `kessai` command line as a user runs it (DESIGN §6): `pay --json` and `replay --json`
against running workers, and one line plus exit code 2 for every mistake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kessai.settings import Settings
from tests.e2e.conftest import System

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

PAY_TIMEOUT_S = 120.0
QUICK_TIMEOUT_S = 30.0


def kessai(*argv: str, timeout: float = QUICK_TIMEOUT_S,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kessai.cli ARGV`` in a clean environment (no KESSAI_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KESSAI_")}
    return subprocess.run([sys.executable, "-m", "kessai.cli", *argv], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


def pay(system: System, *extra: str) -> dict[str, Any]:
    s = system.settings
    done = kessai("pay", "--user", "alice", "--json", "--bootstrap", s.bootstrap,
                  "--keys", str(s.keys_dir), *extra, timeout=PAY_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON object, got: {done.stdout!r}"
    report = json.loads(lines[0])
    assert isinstance(report, dict)
    return report


@pytest.fixture(scope="module")
def paid(system: System) -> dict[str, Any]:
    """One `kessai pay --user alice --json`, parsed."""
    return pay(system)


def test_pay_json_prints_one_object_with_order_id_approved_outcome_and_journey(
        paid: dict[str, Any]) -> None:
    assert paid["order_id"]
    assert paid["outcome"] == "APPROVED"
    assert paid["journey"], "the journey is empty"
    assert any(h["type"] == "payment-result" for h in paid["journey"])


def test_pay_json_with_tampered_user_quantity_is_a_mismatch(system: System) -> None:
    report = pay(system, "--tamper", "user-quantity")
    assert report["order_id"]
    assert report["outcome"] == "MISMATCH"


def test_replay_json_prints_the_orders_verified_payment_results(
        system: System, paid: dict[str, Any]) -> None:
    s = system.settings
    join_key = paid["join_key"]
    assert join_key.endswith("/" + paid["order_id"])
    done = kessai("replay", "kessai.payment-results", "--json", "--correlation-id", join_key,
                  "--bootstrap", s.bootstrap, "--keys", str(s.keys_dir), timeout=60)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert records, "no payment result for the order"
    for r in records:
        assert {"topic", "partition", "offset"} <= r.keys()
        assert r["topic"] == "kessai.payment-results"
        assert r["type"] == "payment-result"
        assert r["correlation_id"] == join_key
        assert r["sender"] == "settlement"
        assert r["signature_valid"] is True
        assert r["body"]["outcome"] == "APPROVED"
        assert r["body"]["order_id"] == paid["order_id"]


def assert_one_line_error(done: subprocess.CompletedProcess[str], *mentions: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {done.stderr!r}"
    for word in mentions:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_pay_unknown_user_exits_2_with_one_line(settings: Settings) -> None:
    done = kessai("pay", "--user", "nobody", "--bootstrap", settings.bootstrap,
                  "--keys", str(settings.keys_dir))
    assert_one_line_error(done, "nobody", "alice")


@pytest.mark.parametrize("item", [":x", "XXXX:many"])
def test_pay_malformed_item_exits_2_with_one_line(settings: Settings, item: str) -> None:
    done = kessai("pay", "--item", item, "--bootstrap", settings.bootstrap,
                  "--keys", str(settings.keys_dir))
    assert_one_line_error(done, "--item")


def test_pay_item_without_value_exits_2_with_one_line(settings: Settings) -> None:
    done = kessai("pay", "--bootstrap", settings.bootstrap, "--keys", str(settings.keys_dir),
                  "--item")
    assert_one_line_error(done, "--item")


def test_worker_unknown_agent_exits_2_naming_the_known_ones(settings: Settings) -> None:
    done = kessai("worker", "nosuchagent", "--bootstrap", settings.bootstrap,
                  "--keys", str(settings.keys_dir))
    assert_one_line_error(done, "nosuchagent", "settlement")


def test_worker_without_keys_exits_2_saying_how_to_create_them(
        settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "no-keys"
    empty.mkdir()
    done = kessai("worker", "settlement", "--bootstrap", settings.bootstrap,
                  "--keys", str(empty), cwd=tmp_path)
    assert_one_line_error(done, "kessai keys init", str(empty))


def test_pay_against_unreachable_broker_exits_2_within_15s_naming_the_bootstrap(
        settings: Settings) -> None:
    started = time.monotonic()
    done = kessai("pay", "--bootstrap", "127.0.0.1:1", "--keys", str(settings.keys_dir),
                  timeout=15)
    assert time.monotonic() - started < 15
    assert_one_line_error(done, "127.0.0.1:1")


def test_keys_init_twice_refuses_the_second_time_and_mentions_force(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    first = kessai("keys", "init", str(directory))
    assert first.returncode == 0, first.stderr
    registry = (directory / "registry.json").read_bytes()
    second = kessai("keys", "init", str(directory))
    assert_one_line_error(second, "--force")
    assert (directory / "registry.json").read_bytes() == registry  # the first set is kept
