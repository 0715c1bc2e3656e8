"""Pure arithmetic of ``kessai bench``: percentiles, latency summaries, CPU per payment and the
ratios to the floors. No I/O, so it is unit-tested on its own."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation between closest ranks.

    The same definition as numpy's default ("linear"): rank ``(n - 1) * q / 100`` of the
    sorted values. Raises ValueError on an empty sequence or a ``q`` outside 0–100.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100 or math.isnan(q):
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """Latency figures in milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float
    min: float

    def as_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "p50": round(self.p50, 3), "p95": round(self.p95, 3),
                "p99": round(self.p99, 3), "max": round(self.max, 3),
                "mean": round(self.mean, 3), "min": round(self.min, 3)}


def summarise(values_ms: Sequence[float]) -> Summary | None:
    """p50/p95/p99/max/mean/min of ``values_ms``; None when there are none."""
    if not values_ms:
        return None
    return Summary(len(values_ms), percentile(values_ms, 50), percentile(values_ms, 95),
                   percentile(values_ms, 99), float(max(values_ms)),
                   sum(values_ms) / len(values_ms), float(min(values_ms)))


def rate(count: int, seconds: float) -> float:
    """Events per second; 0 when no time passed."""
    return count / seconds if seconds > 0 else 0.0


def ratio(measured: float | None, floor: float | None) -> float | None:
    """``measured / floor``, or None when either is unknown or the floor is not positive."""
    if measured is None or floor is None or floor <= 0:
        return None
    return measured / floor


def cpu_seconds(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each process used between two samples (processes in both samples only).

    A counter that went backwards (the pid was reused by a restarted process) is dropped.
    """
    used = {}
    for name, start in before.items():
        end = after.get(name)
        if end is not None and end >= start:
            used[name] = end - start
    return used


def per_payment_ms(cpu_s: Mapping[str, float], payments: int) -> dict[str, float]:
    """CPU milliseconds per payment for each process."""
    if payments <= 0:
        return {}
    return {name: 1000 * s / payments for name, s in cpu_s.items()}


@dataclass(frozen=True)
class Floors:
    """What the broker and the crypto alone would allow, measured in the same run.

    ``raw_msgs_per_s``: aiokafka produce → consume of records the size of the payment's
    records; ``raw_hop_p50_ms``/``raw_hop_p99_ms``: one record from a producer to a waiting
    consumer; ``records_per_payment``: records one payment produces; ``hops_per_payment``:
    records on its critical path (each one hop); ``crypto_s_per_payment``: the signs,
    verifications, seals, opens and MACs of one payment, in one process.
    """

    raw_msgs_per_s: float
    raw_hop_p50_ms: float
    raw_hop_p99_ms: float
    records_per_payment: int
    hops_per_payment: int
    crypto_s_per_payment: float
    cores: int = 1

    @property
    def broker_payments_per_s(self) -> float:
        """Payments/s if moving their records were all the work."""
        return self.raw_msgs_per_s / self.records_per_payment if self.records_per_payment else 0.0

    @property
    def crypto_payments_per_s(self) -> float:
        """Payments/s if the crypto were all the work, on every core."""
        if self.crypto_s_per_payment <= 0:
            return 0.0
        return self.cores / self.crypto_s_per_payment

    @property
    def latency_p50_ms(self) -> float:
        """One purchase's latency if every hop on its path were a raw hop (p50)."""
        return self.hops_per_payment * self.raw_hop_p50_ms

    @property
    def latency_p99_ms(self) -> float:
        return self.hops_per_payment * self.raw_hop_p99_ms


def ratios(floors: Floors, *, payments_per_s: float | None, latency: Summary | None,
           cpu_ms_per_payment: float | None) -> dict[str, float | None]:
    """How far the bus is from each floor: >1 means slower (or costlier) than the floor.

    - ``throughput_vs_broker``: broker floor payments/s ÷ measured payments/s;
    - ``throughput_vs_crypto``: crypto floor payments/s ÷ measured payments/s;
    - ``latency_p50_vs_hops``/``latency_p99_vs_hops``: measured ÷ (hops × raw hop latency);
    - ``cpu_vs_crypto``: CPU per payment of all processes ÷ crypto per payment.
    """
    def inv(floor: float, measured: float | None) -> float | None:
        return ratio(floor, measured) if measured else None

    return {
        "throughput_vs_broker": inv(floors.broker_payments_per_s, payments_per_s),
        "throughput_vs_crypto": inv(floors.crypto_payments_per_s, payments_per_s),
        "latency_p50_vs_hops": ratio(latency.p50 if latency else None, floors.latency_p50_ms),
        "latency_p99_vs_hops": ratio(latency.p99 if latency else None, floors.latency_p99_ms),
        "cpu_vs_crypto": ratio(cpu_ms_per_payment,
                               floors.crypto_s_per_payment * 1000),
    }
