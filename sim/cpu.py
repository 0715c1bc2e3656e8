"""CPU time of the processes a bench measures, read from ``/proc`` (Linux).

``/proc/<pid>/stat`` fields 14 and 15 are the user and system CPU time in clock ticks; their
sum before and after the measured window is the CPU the process spent on it. Where ``/proc``
is missing (not Linux) every reading is None and the bench says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def ticks_per_second() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


def parse_stat(text: str) -> tuple[int, int]:
    """(utime, stime) in clock ticks from the text of ``/proc/<pid>/stat``.

    The command name (field 2) is in parentheses and may itself hold spaces or parentheses,
    so the fields are counted from the last ``)``.
    """
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime is field 14, stime field 15.
    return int(rest[11]), int(rest[12])


def cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` has used so far; None if it is gone or unreadable."""
    try:
        utime, stime = parse_stat((PROC / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None
    return (utime + stime) / ticks_per_second()


def sample(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process that still runs."""
    found = {}
    for name, pid in pids.items():
        cpu = cpu_seconds_of(pid)
        if cpu is not None:
            found[name] = cpu
    return found


def machine_busy() -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores from ``/proc/stat``; None where it is missing."""
    try:
        first = (PROC / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time
    total = sum(values[:8])
    return float(total - idle), float(total)


def busy_fraction(before: tuple[float, float] | None,
                  after: tuple[float, float] | None) -> float | None:
    """Share of all cores' time that was busy between two ``machine_busy`` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


@dataclass(frozen=True)
class Proc:
    pid: int
    cmdline: list[str]
    environ: dict[str, str]


def processes() -> Iterable[Proc]:
    """Every process whose command line (and environment, if readable) we may read."""
    if not PROC.is_dir():
        return
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        cmdline = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
        environ: dict[str, str] = {}
        try:
            for item in (entry / "environ").read_bytes().split(b"\0"):
                k, sep, v = item.partition(b"=")
                if sep:
                    environ[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
        except OSError:
            pass
        yield Proc(int(entry.name), cmdline, environ)


def find_workers(bootstrap: str, procs: Iterable[Proc] | None = None) -> dict[str, int]:
    """Worker processes serving ``bootstrap``: ``kessai worker AGENT`` (or ``-m kessai.cli
    worker AGENT``) whose environment or ``--bootstrap`` names it. Keys are ``AGENT`` or,
    for replicas, ``AGENT#2``, ``AGENT#3`` … in pid order."""
    found: list[tuple[str, int]] = []
    for p in procs if procs is not None else processes():
        args = p.cmdline
        if "worker" not in args or not any("kessai" in a for a in args[:3]):
            continue
        i = args.index("worker")
        if i + 1 >= len(args):
            continue
        target = p.environ.get("KESSAI_BOOTSTRAP", "")
        if "--bootstrap" in args[:-1]:
            target = args[args.index("--bootstrap") + 1]
        if target == bootstrap:
            found.append((args[i + 1], p.pid))
    named: dict[str, int] = {}
    for agent, pid in sorted(found, key=lambda x: x[1]):
        name, n = agent, 1
        while name in named:
            n += 1
            name = f"{agent}#{n}"
        named[name] = pid
    return named


def find_broker(bootstrap: str, procs: Iterable[Proc] | None = None) -> int | None:
    """The embedded broker process listening on ``bootstrap`` (Tansu's ``--listener-url``)."""
    url = f"tcp://{bootstrap}"
    for p in procs if procs is not None else processes():
        if "--listener-url" in p.cmdline and url in p.cmdline:
            return p.pid
    return None
