"""`kessai audit verify` on archives of a recorded day of purchases (issue 10).

The day runs through the real handlers on the in-memory bus; the archive is written with the
archiver's own chain and store modules and a checkpoint signed with its key. A clean archive
verifies; every kind of tampering — one byte flipped in a value, a key, a header or a chain
hash, a row deleted, two rows swapped, the tail truncated, a partition rewritten with a
consistent chain, the checkpoints removed — fails and names the place; an altered decision
(APPROVED where the collation says MISMATCH, re-signed and re-chained by an insider) is
reported as a decision that does not follow from its inputs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from audit.findings import Report
from audit.shadow import shadow
from audit.verify import Window, verify
from kessai import envelope, keys
from kessai.cli import main
from kessai.clock import FakeClock
from kessai.settings import Settings
from schemas.v1 import OrderStatus, PaymentResult
from tests.audit.recorded import (
    Recorded,
    RecordingBus,
    copy_of,
    edit,
    mixed_day,
    policy_of,
    rechain,
    write_archive,
)

RESULTS = "kessai.payment-results"
OUTCOMES = {"APPROVED", "DECLINED", "MISMATCH", "AUTH_FAILED", "EXPIRED"}


@pytest.fixture(scope="module")
def settings(keys_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(keys_dir=keys_dir, data_dir=tmp_path_factory.mktemp("audit"),
                    t_first_ms=6_000, t_second_ms=6_000)


@pytest.fixture(scope="module")
async def day(settings: Settings) -> RecordingBus:
    return await mixed_day(settings)


@pytest.fixture(scope="module")
async def clean(day: RecordingBus, settings: Settings,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clean") / "archive.sqlite"
    await write_archive(path, day.recorded, settings.keys_dir, policy_of(settings))
    return path


def places(report: Report) -> set[tuple[str, str, int, int]]:
    return {(d.check, d.topic, d.partition, d.offset) for d in report.discrepancies}


def test_the_day_has_every_outcome(day: RecordingBus) -> None:
    assert {m.outcome for m in day.messages(RESULTS, PaymentResult)} >= OUTCOMES


def test_a_recorded_day_verifies_clean(clean: Path, settings: Settings) -> None:
    report = verify(clean, settings)
    assert report.ok, report.text()
    assert report.records == report.checked > 50
    assert report.checkpoints == 1
    assert report.orders >= 6  # every order's outcome was recomputed


def _row(path: Path, topic: str, nth: int = 0) -> tuple[int, int]:
    """(partition, offset) of the ``nth`` row of ``topic``'s fullest partition."""
    db = sqlite3.connect(path)
    partition, n = db.execute("SELECT partition, COUNT(*) AS n FROM records WHERE topic = ? "
                              "GROUP BY partition ORDER BY n DESC, partition",
                              (topic,)).fetchone()
    assert n >= nth + 2, f"the day has too few rows on {topic}[{partition}]"
    offset = db.execute("SELECT offset FROM records WHERE topic = ? AND partition = ? "
                        "ORDER BY offset LIMIT 1 OFFSET ?", (topic, partition, nth)).fetchone()[0]
    db.close()
    return partition, offset


def _flip(column: str) -> Callable[[sqlite3.Connection, str, int, int], None]:
    def change(db: sqlite3.Connection, topic: str, partition: int, offset: int) -> None:
        (value,) = db.execute(f"SELECT {column} FROM records WHERE topic = ? AND partition = ? "
                              "AND offset = ?", (topic, partition, offset)).fetchone()
        data = bytearray(value)
        data[len(data) // 2] ^= 0x01
        db.execute(f"UPDATE records SET {column} = ? WHERE topic = ? AND partition = ? "
                   "AND offset = ?", (bytes(data), topic, partition, offset))
    return change


def _delete(db: sqlite3.Connection, topic: str, partition: int, offset: int) -> None:
    db.execute("DELETE FROM records WHERE topic = ? AND partition = ? AND offset = ?",
               (topic, partition, offset))


def _swap_with_next(db: sqlite3.Connection, topic: str, partition: int, offset: int) -> None:
    nxt = offset + 1
    where = "topic = ? AND partition = ? AND offset = ?"
    db.execute(f"UPDATE records SET offset = -1 WHERE {where}", (topic, partition, offset))
    db.execute(f"UPDATE records SET offset = ? WHERE {where}", (offset, topic, partition, nxt))
    db.execute(f"UPDATE records SET offset = ? WHERE {where}", (nxt, topic, partition, -1))


def _truncate_from(db: sqlite3.Connection, topic: str, partition: int, offset: int) -> None:
    db.execute("DELETE FROM records WHERE topic = ? AND partition = ? AND offset >= ?",
               (topic, partition, offset))


def _rewrite_consistently(db: sqlite3.Connection, topic: str, partition: int,
                          offset: int) -> None:
    _flip("value")(db, topic, partition, offset)
    rechain(db, topic, partition)


# (case, topic, nth row of a partition, the edit, the check and the row it must name: "self"
# the edited row, "next" the row after it, "last" the partition's checkpointed head)
CASES = [
    ("value byte", RESULTS, 1, _flip("value"), "chain", "self"),
    ("key byte", "kessai.settlement.first", 1, _flip("key"), "chain", "self"),
    ("header byte", "kessai.order-status", 1, _flip("headers"), "chain", "self"),
    ("chain hash byte", RESULTS, 1, _flip("hash"), "chain", "self"),
    ("previous-hash byte", RESULTS, 1, _flip("prev_hash"), "chain", "self"),
    ("row deleted", "kessai.order-status", 1, _delete, "chain", "next"),
    ("two rows swapped", RESULTS, 0, _swap_with_next, "chain", "self"),
    ("tail truncated", RESULTS, 1, _truncate_from, "checkpoint", "last"),
    ("partition rewritten, chain recomputed", "kessai.order-status", 0,
     _rewrite_consistently, "checkpoint", "last"),
]


@pytest.mark.parametrize(("case", "topic", "nth", "change", "check", "named"), CASES,
                         ids=[c[0] for c in CASES])
def test_tampering_fails_and_names_the_place(case: str, topic: str, nth: int,
                                             change: Callable[..., None], check: str,
                                             named: str, clean: Path, settings: Settings,
                                             tmp_path: Path) -> None:
    path = copy_of(clean, tmp_path / "tampered.sqlite")
    partition, offset = _row(path, topic, nth)
    db = sqlite3.connect(path)
    last = db.execute("SELECT MAX(offset) FROM records WHERE topic = ? AND partition = ?",
                      (topic, partition)).fetchone()[0]
    db.close()
    edit(path, lambda db: change(db, topic, partition, offset))
    report = verify(path, settings)
    assert not report.ok
    expected = {"self": offset, "next": offset + 1, "last": last}[named]
    assert (check, topic, partition, expected) in places(report), report.text()


def test_removing_the_checkpoints_is_reported(clean: Path, settings: Settings,
                                              tmp_path: Path) -> None:
    path = copy_of(clean, tmp_path / "tampered.sqlite")
    edit(path, lambda db: db.execute("DELETE FROM checkpoints"))
    report = verify(path, settings)
    assert [d.check for d in report.discrepancies] == ["checkpoint"], report.text()
    assert "no signed checkpoint" in report.discrepancies[0].detail


def _altered(day: RecordingBus, keys_dir: Path, keep_original: bool = False
             ) -> tuple[list, tuple[str, int, int]]:
    """The day's record with the MISMATCH result to the user re-signed as APPROVED by the
    settlement key (an insider; the archive is then chained and checkpointed over it), or
    with such a result added at the end of its partition, the original kept."""
    settlement = keys.load_actor(keys_dir, "settlement")
    out = list(day.recorded)
    for i, r in enumerate(out):
        if r.topic != RESULTS:
            continue
        env = envelope.decode(r.value or b"")
        msg = envelope.body_of(env)
        if (msg.outcome, msg.recipient) != ("MISMATCH", "user"):
            continue
        forged = replace(r, value=envelope.encode(envelope.seal_envelope(
            replace(msg, outcome="APPROVED"), env.correlation_id, settlement, FakeClock(),
            env.trace_id)))
        if keep_original:
            top = max(x.offset for x in out if (x.topic, x.partition) == (r.topic, r.partition))
            forged = replace(forged, offset=top + 1, timestamp_ms=out[-1].timestamp_ms)
            out.append(forged)
        else:
            out[i] = forged
        return out, (forged.topic, forged.partition, forged.offset)
    raise AssertionError("the day has no MISMATCH result to the user")


async def test_an_altered_decision_is_reported(day: RecordingBus, settings: Settings,
                                               tmp_path: Path) -> None:
    records, (topic, partition, offset) = _altered(day, settings.keys_dir)
    path = tmp_path / "altered.sqlite"
    await write_archive(path, records, settings.keys_dir, policy_of(settings))
    report = verify(path, settings)
    assert ("decision", topic, partition, offset) in places(report), report.text()
    [decision] = [d for d in report.discrepancies if d.check == "decision"]
    assert "recorded APPROVED, recomputed MISMATCH" in decision.detail


async def test_a_second_outcome_for_an_order_is_reported(day: RecordingBus, settings: Settings,
                                                         tmp_path: Path) -> None:
    records, (topic, partition, offset) = _altered(day, settings.keys_dir, keep_original=True)
    path = tmp_path / "two.sqlite"
    await write_archive(path, records, settings.keys_dir, policy_of(settings))
    report = verify(path, settings)
    assert ("outcomes", topic, partition, offset) in places(report), report.text()
    assert "MISMATCH, APPROVED" in report.text()


async def test_shadow_matches_the_record_and_flags_an_altered_decision(
        day: RecordingBus, clean: Path, settings: Settings, tmp_path: Path) -> None:
    report = shadow("settlement", clean, settings)
    assert report.ok and report.orders >= 6, report.text()
    records, (topic, partition, offset) = _altered(day, settings.keys_dir)
    path = tmp_path / "altered.sqlite"
    await write_archive(path, records, settings.keys_dir, policy_of(settings))
    report = shadow("settlement", path, settings)
    assert [(d.check, d.topic, d.partition, d.offset) for d in report.discrepancies] == [
        ("shadow", topic, partition, offset)], report.text()
    assert "MISMATCH to the user" in report.discrepancies[0].detail


def _after(day: RecordingBus, topic: str, env: envelope.Envelope) -> Recorded:
    """``env`` as the next record of ``topic``'s partition 0, after the day."""
    top = max((r.offset for r in day.recorded if (r.topic, r.partition) == (topic, 0)),
              default=-1)
    return Recorded(topic, 0, top + 1, day.recorded[-1].timestamp_ms,
                    env.correlation_id.encode(), tuple(env.headers()), envelope.encode(env))


async def test_a_card_number_on_a_shop_readable_topic_is_reported(
        day: RecordingBus, settings: Settings, tmp_path: Path) -> None:
    shop = keys.load_actor(settings.keys_dir, "shop-1")
    leak = OrderStatus("shop-1", "o-leak", "sess", "PAID", detail="card 4111111111111111")
    env = envelope.seal_envelope(leak, "shop-1/o-leak", shop, FakeClock())
    path = tmp_path / "leak.sqlite"
    await write_archive(path, [*day.recorded, _after(day, "kessai.order-status", env)],
                        settings.keys_dir, policy_of(settings))
    report = verify(path, settings)
    [found] = [d for d in report.discrepancies if d.check == "card-number"]
    assert (found.topic, found.partition) == ("kessai.order-status", 0)
    assert "4111111111111111" not in found.detail  # the report masks it


async def test_a_forged_record_the_system_did_not_reject_is_reported(
        day: RecordingBus, settings: Settings, tmp_path: Path) -> None:
    shop = keys.load_actor(settings.keys_dir, "shop-1")
    status = OrderStatus("shop-1", "o-forged", "sess", "PAID")
    # Signed by the shop but claiming to be the settlement server: a bad signature.
    env = replace(envelope.seal_envelope(status, "shop-1/o-forged", shop, FakeClock()),
                  sender="settlement")
    path = tmp_path / "forged.sqlite"
    await write_archive(path, [*day.recorded, _after(day, "kessai.order-status", env)],
                        settings.keys_dir, policy_of(settings))
    report = verify(path, settings)
    assert {(d.check, d.topic) for d in report.discrepancies} == {
        ("signature", "kessai.order-status")}, report.text()


def test_replay_reads_a_time_range_from_the_archive(clean: Path, settings: Settings,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db = sqlite3.connect(clean)
    stamps = sorted(ts for (ts,) in db.execute("SELECT timestamp_ms FROM records"))
    db.close()
    since = min(ts for ts in stamps if ts > stamps[0])  # after the purchases were made
    expected = sum(1 for ts in stamps if ts >= since)
    assert 0 < expected < len(stamps)
    assert main(["replay", "--archive", str(clean), "--keys", str(settings.keys_dir),
                 "--since", str(since / 1000), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == expected
    assert all(r["timestamp_ms"] >= since and r["signature_valid"] for r in lines)
    assert main(["replay", "kessai.payment-results", "--archive", str(clean), "--keys",
                 str(settings.keys_dir), "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert results and {r["topic"] for r in results} == {RESULTS}


def test_the_cli_exits_1_naming_the_place_and_2_without_an_archive(
        clean: Path, settings: Settings, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["audit", "verify", "--keys", str(settings.keys_dir), "--json"]
    assert main([*args, "--archive", str(clean)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    path = copy_of(clean, tmp_path / "tampered.sqlite")
    partition, offset = _row(path, RESULTS, 1)
    edit(path, lambda db: _flip("value")(db, RESULTS, partition, offset))
    assert main([*args, "--archive", str(path)]) == 1
    found = json.loads(capsys.readouterr().out)["discrepancies"]
    assert {"check": "chain", "topic": RESULTS, "partition": partition, "offset": offset} \
        .items() <= found[0].items()
    assert main([*args, "--archive", str(tmp_path / "none.sqlite")]) == 2
    assert "no archive at" in capsys.readouterr().err
    shadow_args = ["audit", "shadow", "settlement", "--keys", str(settings.keys_dir)]
    assert main([*shadow_args, "--archive", str(clean)]) == 0
    assert "OK: no discrepancy" in capsys.readouterr().out


async def test_a_second_charge_for_an_order_is_reported(day: RecordingBus, settings: Settings,
                                                        tmp_path: Path) -> None:
    topic = "kessai.authorization-results"
    answer = next(r for r in day.recorded if r.topic == topic
                  and envelope.body_of(envelope.decode(r.value or b"")).approved)
    approved = envelope.body_of(envelope.decode(answer.value or b""))
    # The issuer approves the same order again under another auth code: a second charge.
    again = envelope.seal_envelope(replace(approved, auth_code=approved.auth_code + "-2"),
                                   approved.join_key, keys.load_actor(settings.keys_dir,
                                                                      "issuer"), FakeClock())
    top = max(r.offset for r in day.recorded if (r.topic, r.partition) == (topic,
                                                                           answer.partition))
    extra = replace(answer, offset=top + 1, value=envelope.encode(again),
                    timestamp_ms=day.recorded[-1].timestamp_ms)
    path = tmp_path / "charged.sqlite"
    await write_archive(path, [*day.recorded, extra], settings.keys_dir, policy_of(settings))
    report = verify(path, settings)
    assert ("charges", topic, extra.partition, extra.offset) in places(report), report.text()


def test_a_time_range_limits_the_content_checks_not_the_chains(
        clean: Path, settings: Settings, tmp_path: Path) -> None:
    db = sqlite3.connect(clean)
    last = db.execute("SELECT MAX(timestamp_ms) FROM records").fetchone()[0]
    db.close()
    later = verify(clean, settings, Window(since_ms=last + 1))
    assert later.ok and later.checked == 0 and later.orders == 0
    path = copy_of(clean, tmp_path / "tampered.sqlite")
    partition, offset = _row(path, RESULTS, 1)
    edit(path, lambda db: _flip("value")(db, RESULTS, partition, offset))
    assert ("chain", RESULTS, partition, offset) in places(
        verify(path, settings, Window(since_ms=last + 1)))
