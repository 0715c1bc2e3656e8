"""`kessai bench` as a user runs it (issue 6 item 5): its own embedded broker and workers, a
JSON report where every purchase reached a final status, and floors measured in the same run.

No timing thresholds: the figures depend on the machine; the tests check that they are there,
positive, and consistent with each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e]

BENCH_TIMEOUT_S = 150.0
SMALL_FLOORS = ("--raw-records", "2000", "--raw-samples", "40", "--warmup", "2",
                "--idle-seconds", "1")


def bench(*argv: str, cwd: Path) -> dict[str, Any]:
    """Run `kessai bench ARGV --json` in a clean environment (no KESSAI_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KESSAI_")}
    # The idle figure is taken once the fetch waits reached their deepest tier (30 s of quiet
    # by default); these tests check the report, not the figure, so the quiet is shortened.
    env["KESSAI_DEEP_IDLE_AFTER_MS"] = "3000"
    done = subprocess.run([sys.executable, "-m", "kessai.cli", "bench", *argv, "--json"],
                          capture_output=True, text=True, timeout=BENCH_TIMEOUT_S, env=env,
                          cwd=cwd)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON object, got: {done.stdout!r}"
    report = json.loads(lines[0])
    assert isinstance(report, dict)
    return report


def positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def check_report(r: dict[str, Any], n: int) -> None:
    assert r["ok"] is True
    fin = r["final"]
    assert (fin["reached"], fin["of"], fin["lost"]) == (n, n, 0)
    assert sum(fin["statuses"].values()) == n
    assert set(fin["statuses"]) <= {"PAID", "NOT_PAID", "RESULT_REJECTED"}
    assert fin["statuses"].get("PAID") == n, fin  # the bench's cards have no limit
    assert positive(r["payments_per_s"])
    lat = r["latency_ms"]
    assert lat["count"] == n
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]

    cpu = r["cpu"]["per_process"]
    for agent in ("settlement", "issuer", "shop", "terminal", "broker"):
        assert agent in cpu, f"no CPU figure for {agent}: {sorted(cpu)}"
        assert cpu[agent]["ms_per_payment"] >= 0
    assert positive(r["cpu"]["ms_per_payment_total"])

    fl = r["floors"]
    assert positive(fl["raw"]["msgs_per_s"])
    assert positive(fl["raw"]["record_bytes"])
    assert positive(fl["raw_hop_ms"]["p50"]) and fl["raw_hop_ms"]["p50"] <= fl["raw_hop_ms"]["p99"]
    quiet = fl["quiet_hop_ms"]
    assert positive(quiet["p50"]) and quiet["p50"] <= quiet["p99"]
    assert quiet["fetch_wait_ms"] == 20 and quiet["partitions"] >= 4  # the embedded defaults
    assert fl["quiet_latency_p50_ms"] == pytest.approx(quiet["p50"] * fl["hops_per_payment"],
                                                       abs=0.01)
    assert positive(fl["crypto"]["ms_per_payment"])
    assert fl["crypto"]["envelope_ms_per_payment"] >= fl["crypto"]["ms_per_payment"] * 0.5
    assert all(positive(v) for v in fl["crypto"]["counts"].values())
    assert positive(fl["records_per_payment"]) and positive(fl["hops_per_payment"])
    for name in ("broker_payments_per_s", "crypto_payments_per_s", "latency_p50_ms"):
        assert positive(fl[name]), name
    for name, value in r["ratios"].items():
        assert positive(value), name
    flow = r["flow"]
    assert flow["source"] == "probe purchase"
    assert 0 < flow["hops"] < flow["records"] == fl["records_per_payment"]
    assert flow["steps"][0]["type"] == "purchase-command" and flow["steps"][0]["on_path"]
    assert r["dead_workers"] == []
    assert r["idle"]["cores_total"] >= 0 and "broker" in r["idle"]["per_process"]


def test_bench_one_at_a_time_reports_every_purchase_final_and_the_floors(tmp_path: Path) -> None:
    r = bench("-n", "20", "--sequential", *SMALL_FLOORS, cwd=tmp_path)
    assert (r["mode"], r["purchases"], r["rate"]) == ("sequential", 20, None)
    assert r["broker"].startswith("embedded")
    check_report(r, 20)


def test_bench_open_loop_at_a_rate_with_a_plot(tmp_path: Path) -> None:
    plot = tmp_path / "latency.png"
    r = bench("-n", "40", "--rate", "20", *SMALL_FLOORS, "--plot", str(plot), cwd=tmp_path)
    assert (r["mode"], r["rate"]) == ("rate", 20.0)
    check_report(r, 40)
    assert r["driver_lag_ms"]["max"] >= 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
