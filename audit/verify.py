"""`kessai audit verify`: one pass that says whether the recorded history holds up (issue 10).

1. Chains and checkpoints: every row's link and hash, every signed checkpoint against the rows
   (:mod:`audit.chains`) — over the whole archive, whatever the time range.
2. Envelopes, for the records in the time range: a valid signature by the sender's registered
   key, and the catalogue naming the sender's kind a producer of the topic. A record the system
   itself rejected (a dead letter names it) is counted, not reported: the door did its job.
3. No card number on a topic a shop, POS, terminal or relay may read (:mod:`audit.cards`).
4. Settlement: every outcome recomputed from the recorded inputs with the join's own functions,
   exactly one terminal outcome per order, at most one approved charge per order
   (:mod:`audit.settlement`) — for the orders begun in the time range, each with its whole
   recorded history.
5. The other flows' decisions, recomputed the same way with each agent's own pure functions
   (:mod:`audit.flows`): the seeds 000/001 gateway's approvals and the wallets' approval
   contents and the relay's last page, the seed-002 gateway's
   transaction numbers, method lists and outcomes, the seed-004 selector's routing, the FI
   host's approve/decline — for the subjects begun in the time range.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agents.archiver.chain import Row, unpack_headers
from agents.settlement.userauth import SettlementSecrets
from audit import cards
from audit.archive import ArchiveReader
from audit.chains import add_broker_checkpoints, check_chains, load_checkpoints
from audit.decisions import FlowAudit, add_findings
from audit.findings import Report
from audit.flows import TOPICS as FLOW_TOPICS
from audit.flows import flow_audits
from audit.settlement import (
    ACKS,
    AUTH_RESULTS,
    AUTHORIZATIONS,
    FIRST,
    RESULTS,
    SECOND,
    TIMERS,
    SettlementAudit,
    policy_from,
)
from audit.settlement import TOPICS as SETTLEMENT_TOPICS
from kessai import keys
from kessai.errors import ConfigError, KessaiError
from kessai.handlers import actor_kind
from kessai.keys import Registry
from kessai.replay import ReplayRecord, inspect_record
from kessai.settings import Settings
from schemas.v1 import Checkpoint, DeadLetter
from topics.catalogue import CATALOGUE

DEAD_LETTERS = "kessai.dead-letters"
# Decoded whatever the time range: a decision begun in the range needs its whole history.
WHOLE_HISTORY = frozenset(SETTLEMENT_TOPICS) | frozenset(FLOW_TOPICS)
Tick = Callable[[int], None]


@dataclass(frozen=True)
class Window:
    """Records whose timestamp lies in [since_ms, until_ms] (either end open when None)."""

    since_ms: int | None = None
    until_ms: int | None = None

    def holds(self, ts: int) -> bool:
        return (self.since_ms is None or ts >= self.since_ms) and \
            (self.until_ms is None or ts <= self.until_ms)


EVERYTHING = Window()


def settlement_secrets(settings: Settings) -> SettlementSecrets | None:
    try:
        return SettlementSecrets.of(keys.load_actor(settings.keys_dir, "settlement"))
    except (KessaiError, KeyError):
        return None


def records(reader: ArchiveReader, registry: Registry, topics: tuple[str, ...] | None = None,
            window: Window | None = None) -> Iterable[tuple[Row, ReplayRecord | None]]:
    """The archive's rows in recorded (time) order, each with its record decoded and
    signature-checked (None outside ``window``: not decoded at all)."""
    for row in _causal(reader.rows_by_time(topics)):
        if window is not None and not window.holds(row.timestamp_ms) \
                and row.topic not in WHOLE_HISTORY:
            yield row, None
            continue
        yield row, inspect_record(row.topic, row.partition, row.offset, row.timestamp_ms,
                                  row.key, row.value, _headers(row.headers), registry)


# Within one millisecond, records are taken in the order the settlement flow makes them (a
# request before the FI answer it led to, before the result), not by topic name.
# The other flows' inputs likewise: a POS request before the phone's session messages before
# the credit answer; a pre-selection or brand info before the wake-up it routes. (Outputs are
# matched to their inputs once everything is read, so their place does not matter.)
_RANK = {t: i for i, t in enumerate((
    "kessai.gateway.payment-requests", FIRST, SECOND, ACKS, AUTHORIZATIONS, AUTH_RESULTS,
    TIMERS, RESULTS, "kessai.paygate.txn-requests", "kessai.paygate.sessions",
    "kessai.credit.requests", "kessai.credit.responses", "kessai.paygate.timers",
    "kessai.selector.preselections", "kessai.wallet.brand-info", "kessai.wakeups.selector",
    "kessai.wallet.brand-answers", "kessai.selector.replies", "kessai.selector.timers"))}


def _causal(rows: Iterable[Row]) -> Iterator[Row]:
    group: list[Row] = []
    for row in rows:
        if group and row.timestamp_ms != group[0].timestamp_ms:
            yield from sorted(group, key=_rank)
            group = []
        group.append(row)
    yield from sorted(group, key=_rank)


def _rank(row: Row) -> tuple[int, str, int, int]:
    return _RANK.get(row.topic, len(_RANK)), row.topic, row.partition, row.offset


def _headers(raw: bytes) -> list[tuple[str, bytes]]:
    try:
        return [(k, v or b"") for k, v in unpack_headers(raw)]
    except Exception:
        return []  # tampered headers: the chain check reports the row


def verify(path: Path, settings: Settings, window: Window = EVERYTHING,
           tick: Tick | None = None, known_pans: Iterable[str] = (),
           broker_checkpoints: Sequence[ReplayRecord] | None = None) -> Report:
    """Audit the archive at ``path``; ``tick(n)`` is told as rows are checked (each row is
    read twice: once for its chain, once for its content). ``broker_checkpoints``: the
    records of the broker's checkpoint topic (``kessai audit verify --bootstrap``), checked
    against the archive's and used with them."""
    started = time.monotonic()
    registry = keys.load_registry(settings.keys_dir)
    reader = ArchiveReader(path)
    report = Report(str(path))
    try:
        report.records = reader.count()
        checkpoints = load_checkpoints(reader, registry, report)
        if broker_checkpoints is not None:
            checkpoints = add_broker_checkpoints(checkpoints, broker_checkpoints,
                                                 reader.archive_id(), report)
        report.checkpoints = len(checkpoints)
        check_chains(reader, checkpoints, report, tick)
        policy = _policy(checkpoints, settings, report)
        secrets = settlement_secrets(settings)
        settlement = SettlementAudit(registry, policy_from(policy), secrets)
        if secrets is None:
            report.notes.append("the key set holds no settlement key file: settlement "
                                "outcomes are not recomputed")
        flows, notes = flow_audits(settings, registry)
        report.notes += notes
        _check_records(reader, registry, window, report, settlement if secrets else None,
                       tick, tuple(known_pans), flows)
        if secrets is not None:
            settlement.report(report, window.holds)
        for flow in flows:
            add_findings(report, flow, "decision", window.holds)
            report.recomputed[flow.name] = flow.decisions
    finally:
        reader.close()
    report.seconds = time.monotonic() - started
    return report


def load_policy(reader: ArchiveReader, registry: Registry, settings: Settings,
                report: Report) -> dict[str, int]:
    """The settlement deadlines of the recorded run (its newest checkpoint)."""
    return _policy(load_checkpoints(reader, registry, Report(report.archive)), settings, report)


def _policy(checkpoints: list[Checkpoint], settings: Settings, report: Report
            ) -> dict[str, int]:
    if checkpoints and checkpoints[-1].policy:
        return checkpoints[-1].policy
    report.notes.append("no checkpoint records the deadlines: this machine's settings are used")
    return {"t_first_ms": settings.t_first_ms, "t_second_ms": settings.t_second_ms,
            "t_history_ms": settings.t_history_ms, "t_authorize_ms": settings.t_authorize_ms,
            "result_redelivery_ms": settings.result_redelivery_ms}


def _rejected(reader: ArchiveReader, registry: Registry) -> set[tuple[str, int, int]]:
    """Records the system dead-lettered (topic, partition, offset)."""
    out = set()
    for _, r in records(reader, registry, (DEAD_LETTERS,)):
        if r is not None and r.signature_valid and isinstance(r.message, DeadLetter):
            out.add((r.message.topic, r.message.partition, r.message.offset))
    return out


def _check_records(reader: ArchiveReader, registry: Registry, window: Window, report: Report,
                   settlement: SettlementAudit | None, tick: Tick | None,
                   known_pans: tuple[str, ...], flows: list[FlowAudit] = ()) -> None:  # type: ignore[assignment]
    specs = {t.name: t for t in CATALOGUE}
    blind = {name for name, t in specs.items() if cards.CARD_BLIND_READERS & set(t.readers)}
    rejected = _rejected(reader, registry)
    dead_lettered = 0
    done = 0
    for row, r in records(reader, registry, window=window):
        done += 1
        if tick is not None and done % 1000 == 0:
            tick(1000)
        if r is None:
            continue
        if settlement is not None:
            # Every order's whole history, so an order begun in the range is decided right.
            settlement.feed(r)
        for flow in flows:
            if r.topic in flow.topics:
                flow.feed(r)
        if not window.holds(r.timestamp_ms):
            continue
        report.checked += 1
        where = (r.topic, r.partition, r.offset)
        if r.topic in blind:
            readers = ", ".join(sorted(cards.CARD_BLIND_READERS & set(specs[r.topic].readers)))
            row_bytes = (row.key or b"") + row.headers + (row.value or b"")
            for pan in sorted(cards.card_numbers_in(row_bytes, known_pans)):
                report.add("card-number", *where,
                           f"a card number ({cards.masked(pan)}) on a topic that {readers} "
                           "may read")
        problem = _envelope_problem(r, specs)
        if problem is None:
            continue
        if where in rejected:
            dead_lettered += 1
            continue
        report.add("signature" if not r.signature_valid else "producer", *where, problem)
    if tick is not None:
        tick(done % 1000)
    if dead_lettered:
        report.notes.append(f"{dead_lettered} records failed their checks and were "
                            "dead-lettered by the system (not counted as discrepancies)")


def _envelope_problem(r: ReplayRecord, specs: dict) -> str | None:  # type: ignore[type-arg]
    if not r.signature_valid:
        return f"no valid signature: {r.error or 'unsigned'}"
    spec = specs.get(r.topic)
    kind = actor_kind(r.sender or "")
    if spec is not None and kind not in spec.producers:
        return f"{r.sender} may not produce on {r.topic} (producers: {', '.join(spec.producers)})"
    if r.error:
        return f"signed, but its body does not decode: {r.error}"
    return None


def parse_time(text: str | None) -> int | None:
    """A time given as UNIX seconds or ISO 8601 (UTC unless it says otherwise), in ms."""
    if text is None:
        return None
    try:
        return int(float(text) * 1000)
    except ValueError:
        pass
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"cannot read the time {text!r}: give UNIX seconds or ISO 8601 "
                          "(2026-12-02T06:00:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
