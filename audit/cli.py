"""`kessai audit verify` and `kessai audit shadow`: arguments in, a report and an exit code out.

Exit codes: 0 no discrepancy, 1 discrepancies (each named: check, topic[partition]@offset, what
differs), 2 a usage error (no archive, no key set).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from audit.archive import ArchiveReader, newest_archive
from audit.findings import Report
from audit.verify import Window, parse_time, verify
from kessai.replay import ReplayRecord
from kessai.settings import Settings


def archive_of(args: argparse.Namespace, settings: Settings) -> Path:
    """``--archive``, else ``KESSAI_ARCHIVE``, else the newest `kessai up` run's archive."""
    import os

    if getattr(args, "archive", None):
        return Path(args.archive)
    if os.environ.get("KESSAI_ARCHIVE"):
        return Path(os.environ["KESSAI_ARCHIVE"])
    return newest_archive(settings.data_dir)


def window_of(args: argparse.Namespace) -> Window:
    since, until = parse_time(args.since), parse_time(args.until)
    if since is not None and until is not None and until < since:
        from kessai.errors import ConfigError

        raise ConfigError("--until is before --from")
    return Window(since, until)


def _progress(show: bool) -> Progress:
    return Progress(TextColumn("audit"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("rows"), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not show, transient=True)


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    path = archive_of(args, settings)
    window = window_of(args)
    reader = ArchiveReader(path)  # a clear error before the bar appears
    total = 2 * reader.count()
    reader.close()
    broker = broker_checkpoints(settings) if getattr(args, "bootstrap", None) else None
    with _progress(not args.json and sys.stderr.isatty()) as bar:
        task = bar.add_task("verify", total=total)
        report = verify(path, settings, window, tick=lambda n: bar.advance(task, n),
                        broker_checkpoints=broker)
    _print(report, args.json)
    return 0 if report.ok else 1


def broker_checkpoints(settings: Settings) -> list[ReplayRecord]:
    """Every record of the broker's checkpoint topic (``--bootstrap`` given on the command
    line: the broker is usually gone when an archive is audited, so the environment's
    ``KESSAI_BOOTSTRAP`` alone does not ask it)."""
    import asyncio

    from kessai.replay import read_range
    from topics.catalogue import CHECKPOINTS

    async def read() -> list[ReplayRecord]:
        return [r async for r in read_range(settings, [CHECKPOINTS])]

    return asyncio.run(read())


def run_shadow(args: argparse.Namespace, settings: Settings) -> int:
    from audit.shadow import shadow

    path = archive_of(args, settings)
    report = shadow(args.agent, path, settings, window_of(args))
    _print(report, args.json)
    return 0 if report.ok else 1


def _print(report: Report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print(report.text())
