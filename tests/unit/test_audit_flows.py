"""`kessai audit verify` recomputes the other flows' decisions (issue 10): the seeds 000/001
gateway's approvals, the seed-002 gateway's method filtering (issuer × merchant) and
outcomes, the seed-004 selector's routing, the FI host's approve/decline.

A recorded day of every flow (the settlement day, then each other flow's, all through the
real handlers on the in-memory bus) verifies clean; for each flow, one decision re-signed by
the deciding agent's own key with another content (an insider; the archive chained and
checkpointed over it) is reported, naming the record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify
from kessai import envelope, keys
from kessai.clock import FakeClock
from kessai.settings import Settings
from tests.audit.flows import gateway_day, merged, selector_day, wakeup_day, wakeup_env
from tests.audit.recorded import Recorded, mixed_day, policy_of, write_archive


@pytest.fixture(scope="module")
def settings(keys_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(keys_dir=keys_dir, data_dir=tmp_path_factory.mktemp("flows"),
                    t_first_ms=6_000, t_second_ms=6_000)


@pytest.fixture(scope="module")
async def day(settings: Settings) -> list[Recorded]:
    days = [(await mixed_day(settings, rounds=1)).recorded]
    for make in (gateway_day, wakeup_day, selector_day):
        days.append((await make(settings)).recorded)
    return merged(*days)


@pytest.fixture(scope="module")
async def clean(day: list[Recorded], settings: Settings,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clean") / "archive.sqlite"
    await write_archive(path, day, settings.keys_dir, policy_of(settings))
    return path


def test_a_recorded_day_of_every_flow_verifies_clean(clean: Path, settings: Settings) -> None:
    with wakeup_env():
        report = verify(clean, settings)
    assert report.ok, report.text()
    assert report.orders >= 6
    counts = report.recomputed
    assert counts["gateway"] >= 4 and counts["selector"] >= 3 and counts["issuer"] >= 8
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
