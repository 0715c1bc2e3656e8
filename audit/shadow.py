"""`kessai audit shadow AGENT`: this build's decisions over a recorded slice, diffed against the
outputs that were recorded (a new build checked against history before it is deployed).

For ``settlement``: the recorded inputs of every order go through this build's join
(:mod:`audit.settlement`); what it would have sent — results (recipient, outcome) and
authorization requests — is compared, per order, with what the recorded run sent.

For ``gateway``, ``wallet``, ``relay``, ``paygate``, ``selector`` and ``issuer``: the same replay
``audit verify`` makes of their decisions (:mod:`audit.flows`), with this build's decision
functions; each recorded output this build would not send (or send otherwise) is a
``shadow`` diff.
"""

from __future__ import annotations

import time
from pathlib import Path

from audit.archive import ArchiveReader
from audit.decisions import add_findings
from audit.findings import Report
from audit.flows import BUILDERS, flow_audit
from audit.settlement import RESULTS, TOPICS, SettlementAudit, policy_from
from audit.verify import EVERYTHING, Window, load_policy, records, settlement_secrets
from kessai import keys
from kessai.errors import ConfigError
from kessai.settings import Settings


def shadow(agent: str, path: Path, settings: Settings, window: Window = EVERYTHING) -> Report:
    """Diff ``agent``'s recomputed outputs against the recorded ones, per order."""
    agents = ("settlement", *BUILDERS)
    if agent not in agents:
        raise ConfigError(f"no shadow run for {agent!r}; choose: {', '.join(agents)}")
    registry = keys.load_registry(settings.keys_dir)
    if agent != "settlement":
        return _shadow_flow(agent, path, settings, registry, window)
    secrets = settlement_secrets(settings)
    if secrets is None:
        raise ConfigError(f"the key set in {settings.keys_dir} holds no settlement key file; "
                          "a shadow run needs it to check user authentication")
    started = time.monotonic()
    reader = ArchiveReader(path)
    report = Report(str(path), shadow_of=agent)
    try:
        report.records = reader.count()
        policy = load_policy(reader, registry, settings, report)
        audit = SettlementAudit(registry, policy_from(policy), secrets)
        for _, r in records(reader, registry, TOPICS):
            assert r is not None
            audit.feed(r)
            report.checked += window.holds(r.timestamp_ms)
    finally:
        reader.close()
    for key, order in sorted(audit.orders.items()):
        began = order.first_seen is not None and window.holds(order.first_seen.timestamp_ms)
        if not began or (not order.shadow and not order.recorded):
            continue
        report.orders += 1
        if set(order.shadow) == set(order.recorded):
            continue
        w = order.results[0][1] if order.results else order.first_seen
        assert w is not None
        report.add("shadow", w.topic, w.partition, w.offset,
                   f"order {key}: this build sends {_fmt(order.shadow)}; the record has "
                   f"{_fmt(order.recorded)}")
    report.seconds = time.monotonic() - started
    return report


def _fmt(outputs: dict[tuple[str, str, str], int]) -> str:
    if not outputs:
        return "nothing"
    parts = []
    for (topic, recipient, outcome), n in sorted(outputs.items()):
        what = f"{outcome} to the {recipient}" if topic == RESULTS else "an FI authorization"
        parts.append(what + (f" ×{n}" if n > 1 else ""))
    return ", ".join(parts)


def _shadow_flow(agent: str, path: Path, settings: Settings, registry: keys.Registry,
                 window: Window) -> Report:
    flow = flow_audit(agent, settings, registry)
    if flow is None:
        raise ConfigError(f"the key set in {settings.keys_dir} lacks what the {agent}'s "
                          "decisions need (its key file, sealing key or tables)")
    started = time.monotonic()
    reader = ArchiveReader(path)
    report = Report(str(path), shadow_of=agent)
    try:
        report.records = reader.count()
        for _, r in records(reader, registry, flow.topics):
            assert r is not None
            flow.feed(r)
            report.checked += window.holds(r.timestamp_ms)
    finally:
        reader.close()
    add_findings(report, flow, "shadow", window.holds)
    report.recomputed[flow.name] = flow.decisions
    report.seconds = time.monotonic() - started
    return report
