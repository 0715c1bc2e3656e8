"""What every flow's recomputation hands back (issue 10): each recorded decision that does not
follow from its recorded inputs, named by the record that holds it.

A flow audit (:mod:`audit.gateway`, :mod:`audit.paygate`, :mod:`audit.selector`,
:mod:`audit.issuer`) is fed the archive's records in recorded order, runs the inputs through
the agent's own pure decision functions, and compares what they decide with what the agent
recorded. ``kessai audit verify`` reports its findings as ``decision`` discrepancies;
``kessai audit shadow AGENT`` runs the same replay with this build's functions and reports
them as ``shadow`` diffs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from audit.findings import Report
from kessai.replay import ReplayRecord


@dataclass(frozen=True)
class Where:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int = 0

    @classmethod
    def of(cls, r: ReplayRecord) -> Where:
        return cls(r.topic, r.partition, r.offset, r.timestamp_ms)


@dataclass(frozen=True)
class Finding:
    """A recorded decision (at ``where``) that differs from the recomputed one. ``began_ms``:
    when the subject (a txn, a sale, a wake-up) began; a time range selects by it."""

    where: Where
    began_ms: int
    detail: str


class FlowAudit(Protocol):
    """One flow's recomputation: ``feed`` every record of ``topics`` in recorded order, then
    ``findings``. ``decisions`` counts the decisions recomputed so far."""

    name: str
    topics: tuple[str, ...]
    decisions: int

    def feed(self, r: ReplayRecord) -> None: ...

    def findings(self) -> list[Finding]: ...


def usable(r: ReplayRecord) -> bool:
    """A record the door would hand a handler (the envelope check reports the others)."""
    return r.signature_valid and not r.error and r.message is not None


def add_findings(report: Report, audit: FlowAudit, check: str, holds: object) -> int:
    """``audit``'s findings as ``check`` discrepancies, for subjects begun in the range; the
    number of findings added."""
    n = 0
    for f in audit.findings():
        if callable(holds) and not holds(f.began_ms):
            continue
        report.add(check, f.where.topic, f.where.partition, f.where.offset,
                   f"{audit.name}: {f.detail}")
        n += 1
    return n
