"""``kessai bench --plot FILE.png``: latency over the run and its histogram (matplotlib, loaded
only when a plot is asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kessai.errors import ConfigError


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("--plot needs matplotlib; install kessai with its dependencies "
                          "(pip install -e .) or drop --plot") from None


def plot(path: Path, purchases: Sequence[Any], report: dict[str, Any]) -> None:
    """Two panels: each purchase's latency at the time it was due, and the histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [p for p in purchases if p.done is not None]
    t0 = min((p.due for p in purchases), default=0.0)
    xs = [p.due - t0 for p in done]
    ys = [p.latency_ms for p in done]
    lost = [p.due - t0 for p in purchases if p.done is None]

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=(3, 2))
    how = ("one at a time" if report["mode"] == "sequential"
           else f"open loop {report['rate']:g}/s")
    commit = (report["git"].get("commit") or "?")[:10]
    fig.suptitle(f"kessai bench: {len(done)}/{len(purchases)} purchases {how}, "
                 f"{report['payments_per_s']:.1f} payments/s (commit {commit})")
    ax1.scatter(xs, ys, s=6, alpha=0.6, label="purchase")
    if lost:
        ax1.scatter(lost, [max(ys, default=1.0)] * len(lost), marker="x", color="red",
                    label=f"lost ({len(lost)})")
    lat = report.get("latency_ms") or {}
    floors = report.get("floors") or {}
    for name, value, style in (("p50", lat.get("p50"), "--"), ("p99", lat.get("p99"), ":"),
                               ("hop floor p50", floors.get("latency_p50_ms"), "-.")):
        if value:
            ax1.axhline(value, linestyle=style, linewidth=1, color="grey")
            ax1.annotate(f"{name} {value:.1f} ms", (0, value), fontsize=8,
                         textcoords="offset points", xytext=(2, 2))
    ax1.set_xlabel("purchase due at (s into the measured run)")
    ax1.set_ylabel("latency to the shop's final status (ms)")
    ax1.set_yscale("log")
    ax1.legend(loc="upper right", fontsize=8)
    ax2.hist(ys, bins=min(60, max(10, len(ys) // 5)))
    for value, style in ((lat.get("p50"), "--"), (lat.get("p95"), "-."), (lat.get("p99"), ":")):
        if value:
            ax2.axvline(value, linestyle=style, linewidth=1, color="black")
    ax2.set_xlabel("latency (ms); lines: p50, p95, p99")
    ax2.set_ylabel("purchases")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
