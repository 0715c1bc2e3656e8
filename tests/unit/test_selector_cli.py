"""`kessai demo selector` and `kessai pay --flow selector --mode …`: every seed-004 example
runs from the CLI and prints its route and the settlement it led to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kessai import cli
from sim import devkeys, selector_demo


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    devkeys.init(d)
    return d


# example → (who sends the 2nd request, via)
EXPECTED = {
    "preselect": ("wallet-b", "self"), "ask": ("wallet-b", "self"),
    "brand-selector": ("wallet-b", "self"), "brand-module": ("wallet-b", "self"),
    "brand-live": ("wallet-a", "self"), "multi": ("wallet-b", "self"),
    "proxy": ("wallet-b", "proxy:wallet-b"), "certificate": ("wallet-a", "certificate:wallet-b"),
    "pick-slave": ("wallet-b", "proxy:wallet-b"), "address": ("wallet-b", "proxy:wallet-b"),
    "attached-brands": ("wallet-b", "proxy:wallet-b"),
    "attached-slaves": ("wallet-b", "proxy:wallet-b"),
}


def test_the_cli_knows_every_example() -> None:
    assert cli.SELECTOR_MODES == selector_demo.MODES == tuple(EXPECTED)


def test_demo_selector_runs_all_twelve_examples(keydir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "selector", "--json", "--in-memory", "--keys",
                     str(keydir)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["example"] for r in rows] == list(range(1, 13))
    for r in rows:
        assert r["outcome"] == "APPROVED" and r["order_id"], r
        assert (r["settled_by"], r["via"]) == ([EXPECTED[r["mode"]][0]],
                                               [EXPECTED[r["mode"]][1]]), r


def test_pay_flow_selector_prints_the_route(keydir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pay", "--flow", "selector", "--mode", "brand-selector", "--in-memory",
                     "--keys", str(keydir)]) == 0
    out = capsys.readouterr().out
    assert "route   selector → wum-carol-b: brand mastercard" in out
    assert "2nd request from wallet-b (via self) → APPROVED" in out
    assert cli.main(["pay", "--flow", "selector", "--keys", str(keydir)]) == 2
    assert "--flow selector needs --mode" in capsys.readouterr().err
