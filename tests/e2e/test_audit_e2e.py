"""The audit archive on the real broker (issue 10): the archiver worker records a run of mixed
purchases; `kessai audit verify` finds it clean and names the row of a tampered copy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.verify import Window, verify
from tests.e2e.bus import purchase, read_all, run
from tests.e2e.conftest import System

pytestmark = [pytest.mark.e2e, pytest.mark.broker]


def stop_archiver(system: System) -> Path:
    """Stop the archiver cleanly (it drains and signs its heads), then start it again; the
    archive file, closed in between, is what the auditor reads."""
    system.workers["archiver"].stop(timeout=30)
    return system.settings.data_dir / "archive.sqlite"


async def test_a_recorded_run_verifies_clean_and_a_tampered_copy_does_not(
        system: System, tmp_path: Path) -> None:
    # Other tests of the session may leave odd records on purpose; audit what starts here.
    started = time.time()
    done = await run(system.settings,
                     purchase("alice"),
                     purchase("alice", card="expired"),
                     purchase("carol", user_tamper="amount"),
                     purchase("carol", scenario={"shop_tamper": "amount"}),
                     purchase("bob", [["XXXX", 1]], wrong_password=True),
                     purchase("alice", [["TEA1", 1]], abandon=True),
                     purchase("alice", scenario={"result_mode": "DIRECT_BOTH"}),
                     purchase("carol", duplicate_second=True),
                     timeout=60)
    outcomes = {p.outcome for p in done}
    assert outcomes >= {"APPROVED", "DECLINED", "MISMATCH", "AUTH_FAILED", "EXPIRED"}, outcomes
    archive = stop_archiver(system)
    try:
        copy = tmp_path / "archive.sqlite"
        shutil.copy(archive, copy)
        # The broker still holds the checkpoint topic: removing the archive's checkpoints (its
        # table and the archived topic) is reported once verify reads the broker. Checked
        # while the archiver is stopped, so the broker holds no checkpoint newer than the copy.
        stripped = shutil.copy(copy, tmp_path / "stripped.sqlite")
        db = sqlite3.connect(stripped)
        with db:
            db.execute("DELETE FROM checkpoints")
            db.execute("DELETE FROM records WHERE topic = 'kessai.audit.checkpoints'")
        db.close()
        on_broker = subprocess.run(
            [sys.executable, "-m", "kessai.cli", "audit", "verify", "--archive", str(stripped),
             "--keys", str(system.settings.keys_dir), "--from", str(started), "--bootstrap",
             system.settings.bootstrap, "--json"], capture_output=True, text=True, timeout=120)
    finally:
        system.start("archiver")
    assert on_broker.returncode == 1, on_broker.stdout + on_broker.stderr
    found = json.loads(on_broker.stdout)["discrepancies"]
    assert any(d["topic"] == "kessai.audit.checkpoints"
               and "on the broker but not in the archive" in d["detail"] for d in found), found
    assert {d["check"] for d in found} == {"checkpoint"}, found

    report = verify(copy, system.settings, Window(since_ms=int(started * 1000)))
    assert report.ok, report.text()
    assert report.checkpoints >= 1 and report.orders >= len(done)
    cli = [sys.executable, "-m", "kessai.cli", "audit", "verify", "--archive", str(copy),
           "--keys", str(system.settings.keys_dir), "--from", str(started)]
    clean = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "OK: no discrepancy" in clean.stdout

    db = sqlite3.connect(copy)
    with db:
        partition, offset, value = db.execute(
            "SELECT partition, offset, value FROM records WHERE topic = "
            "'kessai.payment-results' ORDER BY partition, offset LIMIT 1").fetchone()
        flipped = bytearray(value)
        flipped[10] ^= 0x01
        db.execute("UPDATE records SET value = ? WHERE topic = 'kessai.payment-results' "
                   "AND partition = ? AND offset = ?", (bytes(flipped), partition, offset))
    db.close()
    tampered = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"kessai.payment-results[{partition}]@{offset}" in tampered.stdout


async def test_a_killed_archiver_resumes_from_its_archive_and_stores_each_offset_once(
        system: System, tmp_path: Path) -> None:
    started = time.time()
    in_flight = asyncio.gather(run(system.settings, *(purchase("alice") for _ in range(6)),
                                   timeout=60))
    await asyncio.sleep(1.5)
    system.kill("archiver")  # kill -9 with purchases in flight: no final batch, no checkpoint
    await asyncio.sleep(1.0)
    system.start("archiver")
    [done] = await in_flight
    assert {p.outcome for p in done} == {"APPROVED"}
    # The restarted archiver is caught up when it holds the results of these purchases; only
    # then does stopping it say anything about resuming (a stop drains for at most 2 s).
    live = system.settings.data_dir / "archive.sqlite"
    wanted = {(r.partition, r.offset) for r in await read_all(system.settings,
                                                              "kessai.payment-results")}
    for _ in range(600):
        # Closed at once: the archiver's clean stop folds its WAL into the file only as the
        # last connection, and the copy below reads the file alone.
        with contextlib.closing(sqlite3.connect(live)) as db:
            have = {(p, o) for p, o in db.execute(
                "SELECT partition, offset FROM records WHERE topic = 'kessai.payment-results'")}
        if wanted <= have:
            break
        await asyncio.sleep(0.1)
    archive = stop_archiver(system)
    stopped_ms = int(time.time() * 1000)
    try:
        copy = tmp_path / "archive.sqlite"
        shutil.copy(archive, copy)
    finally:
        system.start("archiver")

    report = verify(copy, system.settings, Window(since_ms=int(started * 1000)))
    assert report.ok, report.text()
    db = sqlite3.connect(copy)
    for topic in ("kessai.settlement.first", "kessai.payment-results", "kessai.order-status"):
        archived = {(p, o) for p, o in db.execute(
            "SELECT partition, offset FROM records WHERE topic = ?", (topic,))}
        on_broker = {(r.partition, r.offset) for r in await read_all(system.settings, topic)
                     if r.timestamp < stopped_ms - 5_000}
        assert on_broker <= archived, (topic, sorted(on_broker - archived))
    db.close()
