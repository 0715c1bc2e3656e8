"""Checking the archive's hash chains and the archiver's signed checkpoints (issue 10)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agents.archiver.chain import GENESIS, expected_hash
from audit.archive import ArchiveReader
from audit.findings import Report
from kessai import envelope
from kessai.errors import KessaiError
from kessai.handlers import actor_kind
from kessai.keys import Registry
from kessai.replay import ReplayRecord
from schemas.v1 import ChainHead, Checkpoint
from topics.catalogue import CHECKPOINTS

Tick = Callable[[int], None]


@dataclass(frozen=True)
class SignedHead:
    seq: int
    head: ChainHead


def load_checkpoints(reader: ArchiveReader, registry: Registry, report: Report
                     ) -> list[Checkpoint]:
    """Every checkpoint the archive holds (its own table and the archived checkpoint topic),
    each checked to be signed by an archiver; bad ones are reported and left out."""
    raws = [(f"checkpoint {seq}", "", 0, -1, raw) for seq, raw in reader.checkpoints()]
    raws += [("", row.topic, row.partition, row.offset, row.value or b"")
             for row in reader.rows_by_time((CHECKPOINTS,))]
    seen: dict[tuple[str, int], Checkpoint] = {}
    for label, topic, partition, offset, raw in raws:
        try:
            env = envelope.decode(raw)
            envelope.verify(env, registry)
            msg = envelope.body_of(env)
        except KessaiError as exc:
            report.add("checkpoint", topic, partition, offset,
                       f"{label or 'checkpoint record'} is not a valid signed envelope: "
                       f"{exc.code}: {exc}")
            continue
        if actor_kind(env.sender) != "archiver" or not isinstance(msg, Checkpoint):
            report.add("checkpoint", topic, partition, offset,
                       f"{label or 'checkpoint record'} is a {env.type} from {env.sender}, "
                       "not an archiver's checkpoint")
            continue
        known = seen.get((msg.archive_id, msg.seq))
        if known is not None and known != msg:
            report.add("checkpoint", topic, partition, offset,
                       f"two different checkpoints numbered {msg.seq}")
        seen[(msg.archive_id, msg.seq)] = msg
    return [seen[k] for k in sorted(seen, key=lambda k: k[1])]


def add_broker_checkpoints(checkpoints: list[Checkpoint], broker: Sequence[ReplayRecord],
                           archive_id: str | None, report: Report) -> list[Checkpoint]:
    """The archive's checkpoints together with those read from the broker's checkpoint topic
    (where a rewrite of the archive cannot reach them). A checkpoint on the broker that the
    archive does not hold — removed from its table and from the archived topic — or holds
    otherwise is reported; either way the broker's heads are checked against the rows."""
    have = {(cp.archive_id, cp.seq): cp for cp in checkpoints}
    for r in broker:
        cp = r.message
        if not r.signature_valid or r.error or actor_kind(r.sender or "") != "archiver" \
                or not isinstance(cp, Checkpoint):
            report.add("checkpoint", r.topic, r.partition, r.offset,
                       f"on the broker: a {r.type} from {r.sender} that is not an archiver's "
                       f"signed checkpoint{': ' + r.error if r.error else ''}")
            continue
        known = have.get((cp.archive_id, cp.seq))
        if known is None:
            whose = "" if archive_id in (None, cp.archive_id) else \
                f"; this archive's id is {archive_id} (another archiver's log, or the id changed)"
            report.add("checkpoint", r.topic, r.partition, r.offset,
                       f"checkpoint {cp.seq} of archive {cp.archive_id} is on the broker but "
                       f"not in the archive (its checkpoints removed){whose}")
            have[(cp.archive_id, cp.seq)] = cp
        elif known != cp:
            report.add("checkpoint", r.topic, r.partition, r.offset,
                       f"checkpoint {cp.seq} on the broker differs from the archive's")
    report.notes.append(f"{len(broker)} checkpoints read from the broker's {CHECKPOINTS}")
    return sorted(have.values(), key=lambda cp: cp.seq)


def check_chains(reader: ArchiveReader, checkpoints: list[Checkpoint], report: Report,
                 tick: Tick | None = None) -> None:
    """Every link and row hash of every partition, and every checkpointed head against the
    rows. Reports each broken row and each head the archive no longer matches."""
    wanted: dict[tuple[str, int, int], list[SignedHead]] = {}
    for cp in checkpoints:
        for head in cp.heads:
            wanted.setdefault((head.topic, head.partition, head.offset), []).append(
                SignedHead(cp.seq, head))
    found: set[tuple[str, int, int]] = set()
    ends: dict[tuple[str, int], int] = {}
    current: tuple[str, int] | None = None
    prev = GENESIS
    index = 0
    done = 0
    for row in reader.rows_by_partition():
        tp = (row.topic, row.partition)
        if tp != current:
            current, prev, index = tp, GENESIS, 0
        index += 1
        if row.prev_hash != prev:
            report.add("chain", row.topic, row.partition, row.offset,
                       "link broken: the row's previous hash is not the hash of the row "
                       "before it (a row removed, inserted or moved, or a hash changed)")
        if expected_hash(row) != row.hash:
            report.add("chain", row.topic, row.partition, row.offset,
                       "row hash does not match its contents (a byte of the record, its key, "
                       "headers, timestamp or chain hash changed)")
        prev = row.hash
        ends[tp] = row.offset
        for signed in wanted.get((row.topic, row.partition, row.offset), ()):
            found.add((row.topic, row.partition, row.offset))
            if signed.head.hash != row.hash:
                report.add("checkpoint", row.topic, row.partition, row.offset,
                           f"checkpoint {signed.seq} signed another head hash for this row "
                           "(the chain up to here was rewritten)")
            elif signed.head.records != index:
                report.add("checkpoint", row.topic, row.partition, row.offset,
                           f"checkpoint {signed.seq} counts {signed.head.records} rows up to "
                           f"here, the archive has {index}")
        done += 1
        if tick is not None and done % 1000 == 0:
            tick(1000)
    if tick is not None:
        tick(done % 1000)
    report.partitions = len(ends)
    for (topic, partition, offset), signed_heads in sorted(wanted.items()):
        if (topic, partition, offset) in found:
            continue
        end = ends.get((topic, partition))
        seqs = ", ".join(str(s.seq) for s in signed_heads)
        where = "has no row of this partition" if end is None else f"ends at offset {end}"
        report.add("checkpoint", topic, partition, offset,
                   f"checkpoint {seqs} signed a head at this offset, the archive {where} "
                   "(rows deleted or the tail truncated)")
    if checkpoints:
        last = checkpoints[-1]
        newer = sum(1 for h in last.heads if ends.get((h.topic, h.partition), -1) > h.offset)
        uncovered = {tp for tp in ends} - {(h.topic, h.partition) for h in last.heads}
        if newer or uncovered:
            report.notes.append(f"{newer + len(uncovered)} partitions have rows after the "
                                f"newest checkpoint ({last.seq}); those rows are protected "
                                "by their chain links only")
    elif ends:
        report.add("checkpoint", "", 0, -1, "the archive holds records but no signed "
                   "checkpoint (checkpoints removed, or the archiver never made one)")
