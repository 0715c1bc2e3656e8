"""What an audit reports: discrepancies, each naming the record it is about."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Discrepancy:
    """One thing that is not as it must be. ``offset`` is -1 when no single record is at fault
    (a whole partition missing, an archive without checkpoints)."""

    check: str  # chain, checkpoint, signature, producer, decision, outcomes, charges, card-number
    topic: str
    partition: int
    offset: int
    detail: str

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}" if self.topic else "-"

    def __str__(self) -> str:
        return f"{self.check:<11} {self.where()}: {self.detail}"


@dataclass
class Report:
    archive: str
    records: int = 0  # rows in the archive
    checked: int = 0  # rows inside the time range (envelope, card-number and decision checks)
    partitions: int = 0
    checkpoints: int = 0
    orders: int = 0  # settlement orders whose outcome was recomputed
    seconds: float = 0.0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recomputed: dict[str, int] = field(default_factory=dict)  # other flows: decisions each
    shadow_of: str = ""  # set for `kessai audit shadow AGENT`

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def add(self, check: str, topic: str, partition: int, offset: int, detail: str) -> None:
        self.discrepancies.append(Discrepancy(check, topic, partition, offset, detail))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "archive": self.archive, "records": self.records,
                "checked": self.checked, "partitions": self.partitions,
                "checkpoints": self.checkpoints, "orders": self.orders,
                "recomputed": self.recomputed,
                "seconds": round(self.seconds, 3),
                "discrepancies": [asdict(d) for d in self.discrepancies], "notes": self.notes}

    def text(self) -> str:
        if self.shadow_of:
            compared = f"{self.orders} orders" if self.shadow_of == "settlement" else \
                f"{sum(self.recomputed.values())} decisions"
            lines = [f"shadow {self.shadow_of} over {self.archive}: {self.checked} records "
                     f"in the range, {compared} compared ({self.seconds:.1f} s)"]
        else:
            lines = [f"archive {self.archive}: {self.records} records in {self.partitions} "
                     f"partitions, {self.checkpoints} signed checkpoints; {self.checked} "
                     f"records checked, {self.orders} settlement outcomes recomputed "
                     f"({self.seconds:.1f} s)"]
            if self.recomputed:
                lines.append("decisions recomputed: " + ", ".join(
                    f"{name} {n}" for name, n in self.recomputed.items()))
        lines += [f"note: {n}" for n in self.notes]
        if self.ok:
            lines.append("OK: no discrepancy")
        else:
            lines.append(f"FAILED: {len(self.discrepancies)} discrepancies")
            lines += [f"  {d}" for d in self.discrepancies]
        return "\n".join(lines)
