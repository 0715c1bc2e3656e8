"""`kessai audit verify` recomputes the other flows' decisions (issue 10): the seeds 000/001
gateway's approvals, the seed-002 gateway's method filtering (issuer × merchant) and
outcomes, the seed-004 selector's routing, the FI host's approve/decline.

A recorded day of every flow (the settlement day, then each other flow's, all through the
real handlers on the in-memory bus) verifies clean; for each flow, one decision re-signed by
the deciding agent's own key with another content (an insider; the archive chained and
checkpointed over it) is reported, naming the record.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify
from kessai import envelope, keys
from kessai.cli import main
from kessai.clock import FakeClock
from kessai.replay import ReplayRecord, inspect_record
from kessai.settings import Settings
from tests.audit.flows import (
    gateway_day,
    merged,
    selector_day,
    selector_mode_day,
    setwallet_day,
    wakeup_day,
    wakeup_env,
)
from tests.audit.recorded import (
    Recorded,
    copy_of,
    edit,
    mixed_day,
    policy_of,
    rechain,
    write_archive,
)
from topics.catalogue import CHECKPOINTS


@pytest.fixture(scope="module")
def settings(keys_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(keys_dir=keys_dir, data_dir=tmp_path_factory.mktemp("flows"),
                    t_first_ms=6_000, t_second_ms=6_000)


@pytest.fixture(scope="module")
async def day(settings: Settings) -> list[Recorded]:
    days = [(await mixed_day(settings, rounds=1)).recorded]
    for make in (gateway_day, setwallet_day, wakeup_day, selector_day):
        days.append((await make(settings)).recorded)
    return merged(*days, _relay_pages(settings))


def _relay_pages(settings: Settings) -> list[Recorded]:
    """The last page the relay served each set-wallet terminal (its HTTP side is not run
    here): what the wallet's contents said, as the relay records it."""
    from schemas.relay import TerminalTraffic

    relay = keys.load_actor(settings.keys_dir, "relay")
    out = []
    for i, (txn, kind) in enumerate((("sw-ok", "approval"), ("sw-limit", "declined"))):
        page = TerminalTraffic(f"rs-{i}", "page", "/inquire", kind, "i-mode", txn, 800)
        env = envelope.seal_envelope(page, f"rs-{i}", relay, FakeClock())
        out.append(Recorded("kessai.relay.terminal-traffic", 0, i, 1_700_000_000_000 + i,
                            f"rs-{i}".encode(), tuple(env.headers()), envelope.encode(env)))
    return out


@pytest.fixture(scope="module")
async def clean(day: list[Recorded], settings: Settings,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clean") / "archive.sqlite"
    await write_archive(path, day, settings.keys_dir, policy_of(settings))
    return path


def test_a_recorded_day_of_every_flow_verifies_clean(clean: Path, settings: Settings,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    with wakeup_env():
        report = verify(clean, settings)
        assert main(["audit", "verify", "--archive", str(clean), "--keys",
                     str(settings.keys_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["recomputed"] == report.recomputed
    assert report.ok, report.text()
    assert report.orders >= 6
    counts = report.recomputed
    assert counts["gateway"] >= 6 and counts["wallet"] >= 2 and counts["relay"] == 2 and counts["selector"] >= 3 and counts["issuer"] >= 8
    assert counts["payment gateway (seed 002)"] >= 10, counts


def _body(r: Recorded) -> Any:
    return envelope.body_of(envelope.decode(r.value or b""))


def _resigned(day: list[Recorded], keys_dir: Path, topic: str, pick: Callable[[Any], bool],
              change: Callable[[Any], Any]) -> tuple[list[Recorded], Recorded]:
    """The day with the first ``topic`` record whose message ``pick`` selects changed by
    ``change`` and signed again with its sender's key."""
    out = list(day)
    for i, r in enumerate(out):
        if r.topic != topic or not pick(_body(r)):
            continue
        env = envelope.decode(r.value or b"")
        forged = envelope.seal_envelope(change(envelope.body_of(env)), env.correlation_id,
                                        keys.load_actor(keys_dir, env.sender), FakeClock(),
                                        env.trace_id)
        out[i] = replace(r, value=envelope.encode(forged))
        return out, out[i]
    raise AssertionError(f"the day has no such record on {topic}")


def _attr(**want: Any) -> Callable[[Any], bool]:
    return lambda m: all(getattr(m, k, None) == v for k, v in want.items())


# (flow, topic, which record, the change, words the report must say)
CASES = [
    ("gateway approval", "kessai.shop.approvals", _attr(txn_id="t-shop"),
     lambda m: replace(m, approved=True, reason="approved", auth_code="FORGED"),
     "recomputed declined (shop_mismatch)"),
    ("gateway authorization amount", "kessai.authorizations", _attr(join_key="gw/t-ok-1"),
     lambda m: replace(m, amount=replace(m.amount, minor=m.amount.minor * 10)),
     "recomputed 1155 JPY"),
    ("wallet contents", "kessai.relay.wallet-contents", _attr(txn_id="sw-limit", kind="declined"),
     lambda m: replace(m, kind="approval"), "recomputed declined"),
    ("relay page", "kessai.relay.terminal-traffic", _attr(txn_id="sw-limit"),
     lambda m: replace(m, kind="approval"), "the wallet's contents said declined"),
    ("seed-002 method filtering", "kessai.device.sessions", _attr(TYPE="payment-methods"),
     lambda m: replace(m, methods=["L", "I", "B", "pB", "R"]), "methods"),
    ("seed-002 credit outcome", "kessai.pos.completions", _attr(sale_ref="s-limit"),
     lambda m: replace(m, outcome="COMPLETED", reason="", method="L"), "COMPLETED"),
    ("seed-004 routing", "kessai.selector.routing-events", _attr(chosen="wum-carol-b"),
     lambda m: replace(m, chosen="wum-carol-a"), "recorded preselect"),
    ("issuer decision", "kessai.credit.responses", _attr(approved=False),
     lambda m: replace(m, approved=True, reason="approved"), "recomputed declined"),
]


@pytest.mark.parametrize(("flow", "topic", "pick", "change", "says"), CASES,
                         ids=[c[0] for c in CASES])
async def test_an_altered_decision_of_each_flow_is_reported(
        flow: str, topic: str, pick: Callable[[Any], bool], change: Callable[[Any], Any],
        says: str, day: list[Recorded], settings: Settings, tmp_path: Path) -> None:
    records, forged = _resigned(day, settings.keys_dir, topic, pick, change)
    path = tmp_path / "altered.sqlite"
    await write_archive(path, records, settings.keys_dir, policy_of(settings))
    with wakeup_env():
        report = verify(path, settings)
    found = [d for d in report.discrepancies if d.check == "decision"
             and (d.topic, d.partition, d.offset) == (forged.topic, forged.partition,
                                                      forged.offset)]
    assert found, report.text()
    assert says in found[0].detail, report.text()
    assert {d.check for d in report.discrepancies} == {"decision"}, report.text()


# -- `kessai audit shadow AGENT`: this build's decisions against the recorded ones ----------

def _decline_big(original: Callable[..., Any]) -> Callable[..., Any]:
    def decide(account: Any, pan: Any, expiry: Any, amount: Any, *a: Any, **kw: Any) -> Any:
        from agents.issuer.rules import Decision

        if amount.minor > 1_000:
            return Decision(False, "over_limit")  # a stricter build
        return original(account, pan, expiry, amount, *a, **kw)
    return decide


def _never_preselected(original: Callable[..., Any]) -> Callable[..., Any]:
    def decide(cfg: Any, wanted: Any, preselected: Any, *a: Any) -> Any:
        return original(cfg, wanted, None, *a)  # a build that forgets the stored choice
    return decide


def _decline_all(original: Callable[..., Any]) -> Callable[..., Any]:
    def examine(request: Any, *a: Any) -> Any:
        from agents.gateway.checks import Declined

        verdict = original(request, *a)
        return Declined("certificate_rejected", "a stricter build", verdict.info.shop_id,
                        verdict.info.amount) if hasattr(verdict, "info") else verdict
    return examine


def _refuse_declines(original: Callable[..., Any]) -> Callable[..., Any]:
    def approval_response(*a: Any) -> Any:
        from agents.wallet.checks import Refused

        response = original(*a)
        if not response.approved:
            raise Refused("a build that ignores declines")
        return response
    return approval_response


# (agent, module, function, the build's change, words the diff must say)
BUILDS = [
    ("issuer", "agents.issuer.rules", "decide", _decline_big, "declined (over_limit)"),
    ("paygate", "agents.paygate.txn", "methods_for", lambda _: lambda *a: ("L",), "methods"),
    ("selector", "agents.selector.routing", "decide", _never_preselected, "NO_PRESELECTION"),
    ("gateway", "agents.gateway.checks", "examine", _decline_all, "certificate_rejected"),
    ("wallet", "agents.wallet.checks", "approval_response", _refuse_declines,
     "recorded declined contents, recomputed nothing"),
    ("relay", "agents.relay.flow", "on_wallet_contents", lambda _: lambda *a: None,
     "no wallet sent approval or declined contents"),
]


@pytest.mark.parametrize(("agent", "module", "name", "build", "says"), BUILDS,
                         ids=[b[0] for b in BUILDS])
def test_shadow_of_a_changed_decision_function_shows_the_diff(
        agent: str, module: str, name: str, build: Callable[..., Any], says: str, clean: Path,
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.shadow import shadow

    with wakeup_env():
        same = shadow(agent, clean, settings)
        assert same.ok and sum(same.recomputed.values()) > 0, same.text()
        target = importlib.import_module(module)
        monkeypatch.setattr(target, name, build(getattr(target, name)))
        changed = shadow(agent, clean, settings)
    assert not changed.ok, changed.text()
    assert {d.check for d in changed.discrepancies} == {"shadow"}
    assert says in changed.text()


def test_shadow_from_the_command_line(clean: Path, settings: Settings,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = ["audit", "shadow", "selector", "--keys", str(settings.keys_dir), "--archive",
            str(clean), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["recomputed"]["selector"] >= 3


# -- the broker's checkpoint topic (`kessai audit verify --bootstrap`) -----------------------

def _broker_copy(path: Path, registry: Any) -> list[ReplayRecord]:
    """The checkpoint topic as the broker holds it: every checkpoint the archiver sent."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT seq, created_ms, envelope FROM checkpoints ORDER BY seq").fetchall()
    db.close()
    out = []
    for i, (_, created, raw) in enumerate(rows):
        env = envelope.decode(raw)
        out.append(inspect_record(CHECKPOINTS, 0, i, created, env.correlation_id.encode(), raw,
                                  list(env.headers()), registry))
    assert out
    return out


def test_the_brokers_checkpoints_catch_a_rewrite_with_the_archives_removed(
        clean: Path, settings: Settings, tmp_path: Path) -> None:
    registry = keys.load_registry(settings.keys_dir)
    broker = _broker_copy(clean, registry)
    with wakeup_env():
        report = verify(clean, settings, broker_checkpoints=broker)
    assert report.ok, report.text()
    path = copy_of(clean, tmp_path / "rewritten.sqlite")
    topic = "kessai.pos.completions"

    def rewrite(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM checkpoints")
        partition, last = db.execute("SELECT partition, MAX(offset) FROM records WHERE "
                                     "topic = ? GROUP BY partition ORDER BY partition LIMIT 1",
                                     (topic,)).fetchone()
        db.execute("UPDATE records SET timestamp_ms = timestamp_ms + 1 WHERE topic = ? AND "
                   "partition = ? AND offset = ?", (topic, partition, last))
        rechain(db, topic, partition)
        rewrite.where = (partition, last)  # type: ignore[attr-defined]

    edit(path, rewrite)
    partition, last = rewrite.where  # type: ignore[attr-defined]
    alone = verify(path, settings)
    assert ("checkpoint", topic, partition, last) not in places(alone)  # the archive alone
    report = verify(path, settings, broker_checkpoints=broker)
    found = places(report)
    assert ("checkpoint", CHECKPOINTS, 0, 0) in found, report.text()
    assert ("checkpoint", topic, partition, last) in found, report.text()
    assert "on the broker but not in the archive" in report.text()


def test_a_forged_record_on_the_brokers_checkpoint_topic_is_reported(
        clean: Path, settings: Settings) -> None:
    registry = keys.load_registry(settings.keys_dir)
    [real] = _broker_copy(clean, registry)
    cp = envelope.body_of(envelope.decode(_raw_checkpoint(clean)))
    forged = envelope.seal_envelope(cp, cp.archive_id, keys.load_actor(settings.keys_dir,
                                                                       "shop-1"), FakeClock())
    raw = envelope.encode(forged)
    fake = inspect_record(CHECKPOINTS, 1, 0, real.timestamp_ms, cp.archive_id.encode(), raw,
                          list(forged.headers()), registry)
    with wakeup_env():
        report = verify(clean, settings, broker_checkpoints=[real, fake])
    assert places(report) == {("checkpoint", CHECKPOINTS, 1, 0)}, report.text()


def _raw_checkpoint(path: Path) -> bytes:
    db = sqlite3.connect(path)
    (raw,) = db.execute("SELECT envelope FROM checkpoints ORDER BY seq LIMIT 1").fetchone()
    db.close()
    return bytes(raw)


def places(report: Any) -> set[tuple[str, str, int, int]]:
    return {(d.check, d.topic, d.partition, d.offset) for d in report.discrepancies}


def test_the_ledger_is_rebuilt_in_the_order_the_issuer_answered(settings: Settings) -> None:
    """Two authorizations of bob's card (limit 2,000 JPY), 1,500 each: the issuer, reading
    two partitions, took the later request first. Rebuilt in request order, the audit would
    approve the first and call its recorded decline wrong; in answer order it agrees."""
    from agents.issuer.rules import Account
    from audit.issuer import IssuerAudit
    from kessai import authenticators, crypto
    from kessai.money import Money
    from schemas.v1 import Authorization, AuthorizationResult

    registry = keys.load_registry(settings.keys_dir)
    issuer = keys.load_actor(settings.keys_dir, "issuer")
    settlement = keys.load_actor(settings.keys_dir, "settlement")
    bob = Account("5555555555554444", "2030-06", 2_000, "JPY")

    def rec(topic: str, partition: int, ts: int, msg: Any, actor: Any, key: str) -> ReplayRecord:
        env = envelope.seal_envelope(msg, key, actor, FakeClock(ts))
        return inspect_record(topic, partition, 0, ts, key.encode(), envelope.encode(env),
                              list(env.headers()), registry)

    def ask(key: str, partition: int, ts: int) -> ReplayRecord:
        sealed = crypto.seal(registry.sealing["issuer"][1],
                             authenticators.pack_account(bob.pan, bob.expiry),
                             authenticators.issuer_account_context(key))
        return rec("kessai.authorizations", partition, ts,
                   Authorization(key, Money(1_500, "JPY"), "payee:shop-1", sealed),
                   settlement, key)

    def answer(key: str, ts: int, approved: bool) -> ReplayRecord:
        return rec("kessai.authorization-results", 0, ts, AuthorizationResult(
            key, approved, "approved" if approved else "over_limit",
            "A1" if approved else ""), issuer, key)

    audit = IssuerAudit([bob], issuer.seal_private or b"")
    for r in (ask("shop-1/o-1", 0, 1_000), ask("shop-1/o-2", 1, 1_001),
              answer("shop-1/o-2", 1_005, True), answer("shop-1/o-1", 1_006, False)):
        audit.feed(r)
    assert audit.findings() == [] and audit.decisions == 2


@pytest.mark.parametrize("mode", ["ask", "brand-selector", "brand-module", "brand-live"])
async def test_the_selectors_routing_is_recomputed_in_every_mode(mode: str,
                                                                 settings: Settings) -> None:
    """Modes the key set's client does not use (it pre-selects): carol's configuration of the
    selector tests, given to the audit as the selector was given it."""
    from audit.selector import SelectorAudit
    from sim import selector_world

    bus = await selector_mode_day(settings, mode)
    registry = keys.load_registry(settings.keys_dir)

    def audited(records: list[Recorded]) -> SelectorAudit:
        audit = SelectorAudit(selector_world.client(mode, prompt_timeout_ms=10_000))
        for r in records:
            audit.feed(inspect_record(r.topic, r.partition, r.offset, r.timestamp_ms, r.key,
                                      r.value, list(r.headers), registry))
        return audit

    clean = audited(bus.recorded)
    assert clean.findings() == [] and clean.decisions >= 3, clean.findings()
    events = [_body(r) for r in bus.recorded if r.topic == "kessai.selector.routing-events"]
    assert {e.mode for e in events if e.decided_by == "selector"} == {mode}
    records, forged = _resigned(bus.recorded, settings.keys_dir,
                                "kessai.selector.routing-events", _attr(decided_by="selector"),
                                lambda m: replace(m, reason=m.reason + "!"))
    [finding] = audited(records).findings()
    assert (finding.where.topic, finding.where.offset) == (forged.topic, forged.offset)
