"""``kessai bench``: purchases driven through the real workers, measured against the floors of
the same run on the same broker.

Phases: (1) the system: its own (embedded broker on a free loopback port, topics, temporary
keys and data, one worker per agent) or the one at ``--bootstrap``; (2) one *probe* purchase,
whose records on every catalogued topic are read back (it fails the run early if the system
does not settle payments); (3) ``--warmup`` purchases, discarded, then a second probe on the
warm system, whose records give the flow the floors are counted from (:mod:`sim.floors`);
(4) ``-n`` purchases, one at a time (``--sequential``) or open loop at ``--rate`` per second,
with the CPU time of every worker and the broker read from ``/proc`` before and after; (5) once
the system has settled, the raw broker floor (aiokafka alone) and the crypto floor (in this
process); (6) the report, its ratios, and optionally a plot.

A purchase is the default seed-003 flow (alice pays the Fig. 5 order at shop-1 by signature,
the result relayed by her terminal). Its latency runs from the moment its purchase command was
due (open loop: its scheduled time, so a driver that falls behind does not hide queueing) to the
moment this driver reads the shop's final status (PAID, NOT_PAID, RESULT_REJECTED) on
``kessai.order-status``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kessai import envelope, keys
from kessai.authenticators import join_key
from kessai.clock import SystemClock
from kessai.errors import ConfigError, KessaiError
from kessai.settings import Settings
from kessai.supervisor import parse_replicas
from schemas.v1 import PurchaseCommand
from sim import cpu, floors, stats
from sim.system import BENCH_AGENTS, System, check_agents, external, start_own

COMMANDS = "kessai.terminal.commands"
ORDER_STATUS = "kessai.order-status"
FINAL = frozenset({"PAID", "NOT_PAID", "RESULT_REJECTED"})
USER, SHOP, ITEMS = "alice", "shop-1", (("XXXX", 1), ("YYYY", 1))
STALL_AFTER = 5  # one-at-a-time purchases lost in a row: the system has stalled, stop


# -- arguments ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    purchases: int
    warmup: int
    rate: float | None  # None: one at a time
    timeout_s: float
    raw_records: int
    raw_samples: int
    idle_s: float = 5.0
    crypto_rounds: int = 200

    @property
    def mode(self) -> str:
        return "sequential" if self.rate is None else "rate"


def plan_from(args: argparse.Namespace) -> Plan:
    """Validate the bench's arguments; every mistake is a ConfigError saying how to fix it."""
    if args.purchases < 1:
        raise ConfigError(f"-n must be at least 1, got {args.purchases}")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must not be negative, got {args.warmup}")
    if args.rate is not None and not args.rate > 0:
        raise ConfigError(f"--rate must be a positive number of purchases per second, "
                          f"got {args.rate}")
    if args.rate is not None and args.rate > 100_000:
        raise ConfigError(f"--rate {args.rate:g} is beyond what one driver can send; "
                          "use at most 100000")
    if not args.timeout > 0:
        raise ConfigError(f"--timeout must be positive seconds, got {args.timeout}")
    if args.raw_records < 100:
        raise ConfigError(f"--raw-records must be at least 100, got {args.raw_records}")
    if args.raw_samples < 10:
        raise ConfigError(f"--raw-samples must be at least 10, got {args.raw_samples}")
    if args.plot is not None:
        plot = Path(args.plot)
        if plot.suffix.lower() != ".png":
            raise ConfigError(f"--plot must name a .png file, got {str(plot)!r}")
        if not plot.resolve().parent.is_dir():
            raise ConfigError(f"--plot: directory {str(plot.resolve().parent)!r} does not exist")
        from sim.plot import require_matplotlib

        require_matplotlib()
    idle_s = getattr(args, "idle_seconds", 5.0)
    if idle_s < 0 or idle_s > 600:
        raise ConfigError(f"--idle-seconds must be within 0..600 (0 skips it), got {idle_s}")
    return Plan(args.purchases, args.warmup, args.rate, args.timeout, args.raw_records,
                args.raw_samples, idle_s)


# -- the driver --------------------------------------------------------------------------------

@dataclass
class Purchase:
    session: str
    due: float = 0.0  # monotonic seconds: when its command was (to be) sent
    sent: float = 0.0  # when it was handed to the producer
    done: float | None = None  # when this driver read its final status
    status: str = ""
    outcome: str = ""
    trace: str = ""  # the trace id of its purchase command
    waiter: asyncio.Future[None] | None = None

    @property
    def latency_ms(self) -> float | None:
        return None if self.done is None else (self.done - self.due) * 1000


class Driver:
    """Sends purchase commands as the operator and reads the shop's statuses."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.operator = keys.load_actor(settings.keys_dir, "operator")
        self.clock = SystemClock()
        self.pending: dict[str, Purchase] = {}
        self.on_done: Callable[[Purchase], None] = lambda _: None
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self.bytes_sent = 0

    async def start(self) -> None:
        waits = self.settings.waits
        self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap, acks="all",
                                         enable_idempotence=False, linger_ms=waits.linger_ms)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap, group_id=None, enable_auto_commit=False,
            fetch_max_wait_ms=waits.fetch_wait_busy_ms, max_poll_records=waits.max_poll_records)
        await self.consumer.start()
        parts = self.consumer.partitions_for_topic(ORDER_STATUS) or set(range(4))
        tps = [TopicPartition(ORDER_STATUS, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def end_offsets(self) -> dict[str, int]:
        """The end offset of every catalogued topic, summed over its partitions."""
        from topics.catalogue import CATALOGUE

        assert self.consumer is not None
        tps = [TopicPartition(t.name, p) for t in CATALOGUE for p in range(t.partitions)]
        ends = await self.consumer.end_offsets(tps)
        totals: dict[str, int] = {}
        for tp, end in ends.items():
            totals[tp.topic] = totals.get(tp.topic, 0) + end
        return totals

    def new(self) -> Purchase:
        p = Purchase("bench-" + uuid.uuid4().hex[:12])
        p.waiter = asyncio.get_running_loop().create_future()
        self.pending[p.session] = p
        return p

    async def send(self, p: Purchase, *, wait: bool = False) -> None:
        assert self.producer is not None
        cmd = PurchaseCommand(session=p.session, user_id=USER, shop_id=SHOP,
                              items=[list(i) for i in ITEMS])
        env = envelope.seal_envelope(cmd, p.session, self.operator, self.clock)
        p.trace = getattr(env, "trace_id", "") or ""
        value = envelope.encode(env)
        self.bytes_sent += len(value)
        p.sent = time.monotonic()
        fut = await self.producer.send(COMMANDS, value, key=p.session.encode(),
                                       headers=env.headers())
        if wait:
            await fut

    async def _read(self) -> None:
        assert self.consumer is not None
        while True:
            batch = await self.consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    self._status(r.value or b"", now)

    def _status(self, raw: bytes, now: float) -> None:
        try:
            env = envelope.decode(raw)
            if env.type != "order-status":
                return
            body = msgpack.unpackb(env.body, raw=False)
        except (KessaiError, ValueError, msgpack.UnpackException):
            return
        p = self.pending.get(body.get("session", ""))
        if p is None or p.done is not None or body.get("status") not in FINAL:
            return
        p.done, p.status, p.outcome = now, body["status"], body.get("outcome", "")
        if p.waiter is not None and not p.waiter.done():
            p.waiter.set_result(None)
        self.on_done(p)

    async def one_at_a_time(self, purchases: list[Purchase], timeout_s: float,
                            on_sent: Callable[[], None] = lambda: None) -> None:
        lost_in_row = 0
        for p in purchases:
            p.due = time.monotonic()
            await self.send(p)
            on_sent()
            assert p.waiter is not None
            try:
                await asyncio.wait_for(asyncio.shield(p.waiter), timeout_s)
                lost_in_row = 0
            except TimeoutError:
                lost_in_row += 1
                if lost_in_row >= STALL_AFTER:
                    return  # the rest are reported as lost (never sent)

    async def open_loop(self, purchases: list[Purchase], rate: float, timeout_s: float,
                        on_sent: Callable[[], None] = lambda: None) -> None:
        start = time.monotonic() + 0.05
        for i, p in enumerate(purchases):
            p.due = start + i / rate
            delay = p.due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send(p)
            on_sent()
        assert self.producer is not None
        await self.producer.flush()
        waiters = [p.waiter for p in purchases if p.waiter is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(asyncio.shield(w) for w in waiters)),
                                   timeout_s)


# -- the flow probe ------------------------------------------------------------------------------

Seen = floors.Seen


def related(records: list[Seen], session: str, trace: str = "") -> list[Seen]:
    """The records of one purchase: those carrying its trace id if the envelopes have one;
    else those keyed or correlated by its session, or by a join key learnt from one of its
    records (repeated until nothing new is learnt)."""
    if trace and any(r.trace == trace for r in records):
        return [r for r in records if r.trace == trace]
    ids, mine, rest = {session}, [], list(records)
    changed = True
    while changed:
        changed = False
        for r in list(rest):
            b = r.body
            if r.key in ids or r.cid in ids or b.get("session") in ids \
                    or b.get("join_key") in ids:
                mine.append(r)
                rest.remove(r)
                changed = True
                if isinstance(b.get("shop_id"), str) and isinstance(b.get("order_id"), str) \
                        and b["order_id"]:
                    ids.add(join_key(b["shop_id"], b["order_id"]))
    return mine


async def probe(driver: Driver, timeout_s: float) -> tuple[Purchase, list[Seen]]:
    """One purchase with every catalogued topic read back, to check the flow model."""
    from topics.catalogue import CATALOGUE

    s = driver.settings
    c = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False,
                         fetch_max_wait_ms=s.waits.fetch_wait_busy_ms)
    await c.start()
    seen: list[Seen] = []
    try:
        tps = [TopicPartition(t.name, p) for t in CATALOGUE for p in range(t.partitions)]
        c.assign(tps)
        await c.seek_to_end(*tps)
        for tp in tps:
            await c.position(tp)

        async def read(until: Callable[[], bool]) -> None:
            while not until():
                for tp, records in (await c.getmany(timeout_ms=100)).items():
                    for r in records:
                        seen.append(_seen(tp.topic, r))

        p = driver.new()
        p.due = time.monotonic()
        await driver.send(p)
        deadline = time.monotonic() + timeout_s
        await read(lambda: p.done is not None or time.monotonic() > deadline)
        settle = time.monotonic() + 0.5  # records that follow the final status (acks, audits)
        await read(lambda: time.monotonic() > settle)
    finally:
        await c.stop()
    return p, related(seen, p.session, p.trace)


def _seen(topic: str, r: Any) -> Seen:
    key = r.key.decode("utf-8", "replace") if r.key else ""
    try:
        env = envelope.decode(r.value or b"")
        body = msgpack.unpackb(env.body, raw=False)
        return Seen(topic, env.type, key, env.correlation_id,
                    body if isinstance(body, dict) else {}, getattr(env, "trace_id", "") or "",
                    env.sender, env.created_ms, r.value or b"")
    except (KessaiError, ValueError, msgpack.UnpackException):
        return Seen(topic, "<undecodable>", key, "", {}, created_ms=r.timestamp)


# -- the run -------------------------------------------------------------------------------------

@dataclass
class Result:
    probe: Purchase
    probe_records: list[Seen]
    warmup: list[Purchase]
    measured: list[Purchase]
    cpu_s: dict[str, float]
    pids: dict[str, int]
    driver_cpu_s: float
    busy: float | None
    wall_s: float
    raw: floors.RawFloor | None = None
    quiet_hop_ms: list[float] = field(default_factory=list)
    quiet_hop: tuple[int, int] = (0, 0)  # (fetch wait ms, partitions) it was measured with
    crypto: floors.CryptoFloor | None = None
    flow: list[floors.Record] = field(default_factory=list)
    readers_source: dict[str, str] = field(default_factory=dict)
    produced: dict[str, int] = field(default_factory=dict)  # records per topic, measured run
    quiet_s: float | None = None  # waited for the system to settle before the floors
    system_cores_during_floors: float | None = None
    other_cores_during_floors: float | None = None
    idle: dict[str, Any] | None = None
    dead_workers: list[str] = field(default_factory=list)


class Progress:
    """A rich progress bar on stderr for people; silent for --json."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._p: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self.console = Console(stderr=True)
            self._p = RichProgress(TextColumn("{task.description:<26}"), BarColumn(),
                                   MofNCompleteColumn(), TimeElapsedColumn(),
                                   console=self.console, refresh_per_second=4)

    def __enter__(self) -> Progress:
        if self._p is not None:
            self._p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()

    def say(self, msg: str) -> None:
        if self.enabled:
            self.console.print(f"kessai bench: {msg}", highlight=False)

    def task(self, description: str, total: int) -> Callable[[int | None], None]:
        """A bar; the returned function advances it by one (None) or sets it to ``n``."""
        if self._p is None:
            return lambda _=None: None
        tid = self._p.add_task(description, total=total)

        def advance(n: int | None = None) -> None:
            if n is None:
                self._p.advance(tid)
            else:
                self._p.update(tid, completed=n)

        return advance


async def _drive(system: System, plan: Plan, progress: Progress) -> Result:
    driver = Driver(system.settings)
    await driver.start()
    try:
        bar = progress.task("probe (flow check)", 1)
        first, records = await probe(driver, plan.timeout_s)
        bar(1)
        if first.done is None:
            return Result(first, records, [], [], {}, {}, 0.0, None, 0.0)

        warm = [driver.new() for _ in range(plan.warmup)]
        if warm:
            bar = progress.task("warm-up (discarded)", len(warm))
            driver.on_done = lambda p: bar(None)
            await _run_phase(driver, warm, plan)
            # The flow and its hop times from a warm system (the first probe ran cold).
            again, seen_again = await probe(driver, plan.timeout_s)
            warm.append(again)
            if again.done is not None:
                records = seen_again

        measured = [driver.new() for _ in range(plan.purchases)]
        label = ("one at a time" if plan.rate is None else f"open loop {plan.rate:g}/s")
        bar = progress.task(f"purchases, {label}", len(measured))
        driver.on_done = lambda p: bar(None)
        pids = system.pids()
        pids_self = {"bench driver": os.getpid()}
        offsets_before = await driver.end_offsets()
        before, self_before, busy_before = cpu.sample(pids), cpu.sample(pids_self), \
            cpu.machine_busy()
        t0 = time.monotonic()
        await _run_phase(driver, measured, plan)
        wall = time.monotonic() - t0
        after, self_after, busy_after = cpu.sample(pids), cpu.sample(pids_self), \
            cpu.machine_busy()
        offsets_after = await driver.end_offsets()
        driver_cpu = stats.cpu_seconds(self_before, self_after).get("bench driver", 0.0)
        return Result(first, records, warm, measured, stats.cpu_seconds(before, after), pids,
                      driver_cpu, cpu.busy_fraction(busy_before, busy_after), wall,
                      dead_workers=system.dead_workers(),
                      produced=_produced(offsets_before, offsets_after))
    finally:
        await driver.stop()


def _produced(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Records produced per catalogued topic between two end-offset readings."""
    return {t: after[t] - before.get(t, 0) for t in sorted(after)
            if after[t] - before.get(t, 0) > 0}


async def _run_phase(driver: Driver, purchases: list[Purchase], plan: Plan) -> None:
    if plan.rate is None:
        await driver.one_at_a_time(purchases, plan.timeout_s)
    else:
        await driver.open_loop(purchases, plan.rate, plan.timeout_s)


async def _floors(system: System, plan: Plan, progress: Progress,
                  result: Result) -> None:
    result.quiet_s = await asyncio.to_thread(_settle, system)
    pids = system.pids()
    me = {"bench": os.getpid()}
    before, mine, busy, t0 = cpu.sample(pids), cpu.sample(me), cpu.machine_busy(), \
        time.monotonic()
    readers = await floors.broker_readers(system.settings.bootstrap, system.agents())
    result.flow, result.readers_source = floors.observed_flow(result.probe_records, readers)
    if not floors.hops(result.flow):  # the probe saw no chain to the final status
        result.flow, result.readers_source = list(floors.FLOW), {}
    crypto_floor = floors.measure_crypto(result.flow, plan.crypto_rounds)
    result.crypto = crypto_floor
    waits = system.settings.waits
    bars: dict[str, Callable[[int | None], None]] = {
        "hop": progress.task("raw one-hop latency", plan.raw_samples),
        "raw": progress.task("raw produce → consume", plan.raw_records),
    }
    result.raw = await floors.measure_raw(
        system.settings.bootstrap, fetch_wait_ms=waits.fetch_wait_busy_ms,
        max_poll_records=waits.max_poll_records, linger_ms=waits.linger_ms,
        record_bytes=round(crypto_floor.record_bytes), records=plan.raw_records,
        samples=plan.raw_samples, on_progress=lambda kind, n, total: bars[kind](n))
    quiet = (waits.quiet_cap_ms, floors.partitions_read(result.flow))
    quiet_samples = min(plan.raw_samples, 100)
    bars["quiet hop"] = progress.task(
        f"one hop at the quiet wait ({quiet[0]} ms, {quiet[1]} partitions)", quiet_samples)
    result.quiet_hop_ms = await floors.measure_hop(
        system.settings.bootstrap, fetch_wait_ms=quiet[0], partitions=quiet[1],
        record_bytes=round(crypto_floor.record_bytes), samples=quiet_samples,
        on_progress=lambda kind, n, total: bars[kind](n))
    result.quiet_hop = quiet
    wall = time.monotonic() - t0
    system_cores = sum(stats.cpu_seconds(before, cpu.sample(pids)).values()) / wall
    bench_cores = sum(stats.cpu_seconds(mine, cpu.sample(me)).values()) / wall
    result.system_cores_during_floors = system_cores
    machine = cpu.busy_fraction(busy, cpu.machine_busy())
    if machine is not None:
        result.other_cores_during_floors = max(
            0.0, machine * (os.cpu_count() or 1) - system_cores - bench_cores)


def _idle(system: System, seconds: float, progress: Progress) -> dict[str, Any]:
    """CPU of the idle system: after a pause for the fetch waits to grow, ``seconds`` of
    nothing to do."""
    # A system left alone: the fetch waits have grown to their longest (the deep idle wait
    # once nothing arrived for deep_idle_after_ms, else the idle wait), a few seconds' ramp.
    w = system.settings.waits
    pause = 3 + (w.deep_idle_after_ms // 1000 if w.fetch_wait_deep_ms else
                 w.idle_after_ms // 1000)
    bar = progress.task("idle system", round(seconds) + pause)
    settled = _settle(system)  # a backlog still being worked off is not idle
    for i in range(pause):
        time.sleep(1.0)
        bar(i + 1)
    pids = system.pids()
    before, busy, t0 = cpu.sample(pids), cpu.machine_busy(), time.monotonic()
    time.sleep(seconds)
    bar(round(seconds) + pause)
    wall = time.monotonic() - t0
    used = stats.cpu_seconds(before, cpu.sample(pids))
    machine = cpu.busy_fraction(busy, cpu.machine_busy())
    total = sum(used.values()) / wall
    return {"seconds": round(wall, 1), "after_quiet_s": pause, "cores_total": round(total, 3),
            "settled": settled is not None,
            "per_process": {k: round(v / wall, 3) for k, v in
                            sorted(used.items(), key=lambda x: -x[1])},
            "other_cores_busy": round(max(0.0, machine * (os.cpu_count() or 1) - total), 3)
            if machine is not None else None}


SETTLED_CORES = 0.35  # the system's processes together: idle fetch polling, no backlog
SETTLE_LIMIT_S = 30.0


def _settle(system: System) -> float | None:
    """Wait (up to 30 s) until the system's processes are near idle, so the floors are not
    measured beside a backlog. Returns the seconds waited, None if they never settled."""
    pids = system.pids()
    t0 = time.monotonic()
    while time.monotonic() - t0 < SETTLE_LIMIT_S:
        a = cpu.sample(pids)
        time.sleep(1.0)
        if sum(stats.cpu_seconds(a, cpu.sample(pids)).values()) < SETTLED_CORES:
            return round(time.monotonic() - t0, 1)
    return None


# -- the report ----------------------------------------------------------------------------------

def git_revision() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def report(system: System, plan: Plan, result: Result) -> dict[str, Any]:
    measured = result.measured
    done = [p for p in measured if p.done is not None]
    latencies = [p.latency_ms for p in done if p.latency_ms is not None]
    lat = stats.summarise(latencies)
    lost = [p.session for p in [result.probe, *result.warmup, *measured] if p.done is None]
    span = (max(p.done for p in done) - min(p.due for p in measured)) if done else 0.0
    pps = stats.rate(len(done), span)
    workers_cpu = {k: v for k, v in result.cpu_s.items() if k != "broker"}
    per_payment = stats.per_payment_ms(result.cpu_s, len(done))
    total_ms = sum(per_payment.values()) if per_payment else None
    workers_ms = sum(stats.per_payment_ms(workers_cpu, len(done)).values()) if done else None

    out: dict[str, Any] = {
        "kessai_bench": 1,
        "mode": plan.mode, "rate": plan.rate, "purchases": plan.purchases,
        "warmup": plan.warmup,
        "scenario": "seed 003, VIA_TERMINAL, alice (signature, sealed card), Fig. 5 order",
        "bootstrap": system.settings.bootstrap,
        "broker": "embedded, started by the bench" if system.own else "external",
        "broker_kind": system.settings.broker_kind,
        "waits": {"fetch_wait_busy_ms": system.settings.waits.fetch_wait_busy_ms,
                  "fetch_wait_idle_ms": system.settings.waits.fetch_wait_idle_ms,
                  "linger_ms": system.settings.waits.linger_ms,
                  "commit_interval_ms": system.settings.waits.commit_interval_ms},
        "git": git_revision(), "machine": machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "final": {"reached": len(done), "of": len(measured), "lost": len(lost),
                  "lost_sessions": lost[:50],
                  "statuses": dict(Counter(p.status for p in done)),
                  "outcomes": dict(Counter(p.outcome for p in done))},
        "payments_per_s": round(pps, 3),
        "duration_s": round(span, 3),
        "latency_ms": lat.as_dict() if lat else None,
        "cpu": {
            "per_process": {name: {"pid": result.pids.get(name),
                                   "cpu_s": round(s, 3),
                                   "ms_per_payment": round(per_payment.get(name, 0.0), 3)}
                            for name, s in sorted(result.cpu_s.items(), key=lambda x: -x[1])},
            "ms_per_payment_total": round(total_ms, 3) if total_ms is not None else None,
            "ms_per_payment_workers": round(workers_ms, 3) if workers_ms is not None else None,
            "driver_cpu_s": round(result.driver_cpu_s, 3),
            "cores_busy": round(sum(result.cpu_s.values()) / result.wall_s, 3)
            if result.wall_s > 0 else None,
            "machine_busy_fraction": round(result.busy, 3) if result.busy is not None
            else None,
            "other_cores_busy": _others(result),
            "source": "/proc/<pid>/stat utime+stime, before and after the measured purchases",
        },
        "flow": flow_report(result),
        "records_measured": {
            "per_payment": round(sum(result.produced.values()) / len(measured), 3)
            if measured else None,
            "by_topic": result.produced,
            "note": "every record produced on a catalogued topic while the measured purchases "
                    "ran (retries, inquiries, audits and dead letters included), per purchase",
        },
        "dead_workers": result.dead_workers,
    }
    if plan.rate is not None and measured:
        lags = [(p.sent - p.due) * 1000 for p in measured if p.sent]
        out["driver_lag_ms"] = {"p99": round(stats.percentile(lags, 99), 3),
                                "max": round(max(lags), 3)} if lags else None
    if result.raw is not None and result.crypto is not None:
        raw, cf = result.raw, result.crypto
        hop = stats.summarise(raw.hop_ms)
        assert hop is not None
        quiet = stats.summarise(result.quiet_hop_ms)
        fl = stats.Floors(raw.msgs_per_s, hop.p50, hop.p99, len(result.flow),
                          floors.hops(result.flow), cf.crypto_s, os.cpu_count() or 1)
        out["floors"] = {
            "settled_after_s": result.quiet_s,
            "system_cores_busy_meanwhile": round(result.system_cores_during_floors, 3)
            if result.system_cores_during_floors is not None else None,
            "other_cores_busy_meanwhile": round(result.other_cores_during_floors, 3)
            if result.other_cores_during_floors is not None else None,
            "raw": {"msgs_per_s": round(raw.msgs_per_s, 1),
                    "produce_msgs_per_s": round(raw.produce_msgs_per_s, 1),
                    "records": raw.records, "record_bytes": raw.record_bytes,
                    "partitions": raw.partitions},
            "raw_hop_ms": {**hop.as_dict(), "fetch_wait_ms": raw.fetch_wait_ms},
            "quiet_hop_ms": {**quiet.as_dict(), "fetch_wait_ms": result.quiet_hop[0],
                             "partitions": result.quiet_hop[1]} if quiet else None,
            "quiet_latency_p50_ms": round(quiet.p50 * fl.hops_per_payment, 3)
            if quiet else None,
            "crypto": cf.as_dict(),
            "records_per_payment": fl.records_per_payment,
            "hops_per_payment": fl.hops_per_payment,
            "broker_payments_per_s": round(fl.broker_payments_per_s, 2),
            "crypto_payments_per_s": round(fl.crypto_payments_per_s, 2),
            "latency_p50_ms": round(fl.latency_p50_ms, 3),
            "latency_p99_ms": round(fl.latency_p99_ms, 3),
        }
        out["ratios"] = {k: (round(v, 3) if v is not None else None) for k, v in stats.ratios(
            fl, payments_per_s=pps or None, latency=lat, cpu_ms_per_payment=total_ms).items()}
        if quiet and lat is not None and quiet.p50 > 0:
            out["ratios"]["latency_p50_vs_quiet_hops"] = round(
                lat.p50 / (quiet.p50 * fl.hops_per_payment), 3)
    out["idle"] = result.idle
    out["ok"] = not lost and not result.dead_workers
    return out


def _others(result: Result) -> float | None:
    """Cores busy with anything but the measured processes and the driver (other load on
    the machine during the measured window: it inflates every figure)."""
    if result.busy is None or result.wall_s <= 0:
        return None
    ours = (sum(result.cpu_s.values()) + result.driver_cpu_s) / result.wall_s
    return round(max(0.0, result.busy * (os.cpu_count() or 1) - ours), 3)


def flow_report(result: Result) -> dict[str, Any]:
    """The flow the floors were counted from, step by step, and how it differs from FLOW."""
    sources = set(result.readers_source.values()) or {"model"}
    observed = bool(result.readers_source)
    return {
        "source": "probe purchase" if observed else "documented model (sim/floors.py FLOW)",
        "readers_from": ("broker (committed offsets of each agent's group)" if sources == {
            "broker"} else "broker and documented model" if "broker" in sources
            else "documented model"),
        "records": len(result.flow), "hops": floors.hops(result.flow),
        "steps": [{"topic": x.topic, "type": x.type, "producer": x.producer,
                   "readers": list(x.readers), "on_path": x.on_path,
                   "t_ms": x.created_ms - result.flow[0].created_ms if observed else None}
                  for x in result.flow],
        "extras": [{"op": e.op, "by": e.by, "why": e.why} for e in floors.EXTRAS],
        "differs_from_model": floors.differences(result.flow) if observed else {},
    }


def _f(v: float | None, spec: str = ".1f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{spec}}{unit}"


def _pct(v: float | None) -> float | None:
    return None if v is None else v * 100


def print_report(r: dict[str, Any], out: Any = sys.stdout) -> None:
    w = out.write
    git = r["git"]
    rev = (git["commit"] or "?")[:12] + (" + uncommitted changes" if git["dirty"] else "")
    how = "one at a time" if r["mode"] == "sequential" else f"open loop at {r['rate']:g}/s"
    w(f"\nkessai bench  {r['purchases']} purchases {how} (warm-up {r['warmup']})\n")
    w(f"  broker {r['bootstrap']}: {r['broker']} ({r['broker_kind']} waits, fetch wait "
      f"{r['waits']['fetch_wait_busy_ms']} ms)\n")
    w(f"  commit {rev}; {r['machine']['cores']} cores, {r['machine']['cpu']}; {r['date']}\n")
    fin = r["final"]
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(fin["statuses"].items()))
    w(f"\nfinal status   {fin['reached']}/{fin['of']} reached one ({statuses or 'none'})\n")
    if fin["lost"]:
        w(f"  LOST: {fin['lost']} purchase(s) never reached a final status: "
          f"{', '.join(fin['lost_sessions'][:10])}{' …' if fin['lost'] > 10 else ''}\n")
    if r["dead_workers"]:
        w(f"  DEAD WORKERS during the run: {', '.join(r['dead_workers'])}\n")
    w(f"throughput     {r['payments_per_s']:.1f} settled payments/s over {r['duration_s']:.2f} s"
      "\n")
    lat = r["latency_ms"]
    if lat:
        w(f"latency ms     p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  p99 {lat['p99']:.1f}  "
          f"max {lat['max']:.1f}   (purchase command → shop's final status read back)\n")
    if r.get("driver_lag_ms"):
        w(f"               driver sent late by p99 {r['driver_lag_ms']['p99']:.1f} ms, max "
          f"{r['driver_lag_ms']['max']:.1f} ms (latency counts from the scheduled time)\n")
    c = r["cpu"]
    if c["per_process"]:
        parts = "  ".join(f"{n} {v['ms_per_payment']:.2f}" for n, v in c["per_process"].items())
        w(f"CPU ms/payment {parts}\n")
        w(f"               total {_f(c['ms_per_payment_total'], '.2f')} (workers "
          f"{_f(c['ms_per_payment_workers'], '.2f')}); measured processes kept "
          f"{_f(c['cores_busy'], '.2f')} cores busy, the machine "
          f"{_f(_pct(c['machine_busy_fraction']), '.0f', '%')}"
          f"; the driver used {c['driver_cpu_s']:.2f} s\n")
        if c.get("other_cores_busy") is not None and c["other_cores_busy"] >= 0.1:
            w(f"               NOTE: other processes kept {c['other_cores_busy']:.2f} cores busy "
              "during the run; every figure here is inflated by that\n")
    else:
        w("CPU            no worker processes found to measure (not Linux, or not this host)\n")
    fl = r.get("floors")
    if fl:
        raw, hop, cr = fl["raw"], fl["raw_hop_ms"], fl["crypto"]
        n = cr["counts"]
        w("\nfloors (same run, same broker)\n")
        if fl.get("settled_after_s") is None:
            w("  NOTE: the system was still busy (a backlog) when the floors were measured\n")
        if (fl.get("other_cores_busy_meanwhile") or 0) >= 0.1:
            w(f"  NOTE: other processes kept {fl['other_cores_busy_meanwhile']:.2f} cores busy "
              "while the floors were measured; they are inflated by that\n")
        w(f"  R_raw        {raw['msgs_per_s']:,.0f} msgs/s aiokafka produce → consume "
          f"({raw['records']:,} records of {raw['record_bytes']} B, {raw['partitions']} "
          f"partitions) = {fl['broker_payments_per_s']:,.0f} payments/s at "
          f"{fl['records_per_payment']} records/payment\n")
        w(f"  raw hop      p50 {hop['p50']:.2f} ms  p99 {hop['p99']:.2f} ms (waiting consumer, "
          f"fetch wait {hop['fetch_wait_ms']} ms) × {fl['hops_per_payment']} hops = p50 "
          f"{fl['latency_p50_ms']:.1f} ms, p99 {fl['latency_p99_ms']:.1f} ms\n")
        q = fl.get("quiet_hop_ms")
        if q:
            w(f"  quiet hop    p50 {q['p50']:.2f} ms  p99 {q['p99']:.2f} ms (fetch wait "
              f"{q['fetch_wait_ms']} ms over {q['partitions']} partitions, as a worker idle "
              f"between its hops fetches) × {fl['hops_per_payment']} hops = p50 "
              f"{fl['quiet_latency_p50_ms']:.1f} ms\n")
        w(f"  crypto       {cr['ms_per_payment']:.2f} ms/payment ({n['sign']} signs, "
          f"{n['verify']} verifications, {n['seal']} seals, {n['open']} opens, {n['mac']} MACs)"
          f" = {fl['crypto_payments_per_s']:,.0f} payments/s on {r['machine']['cores']} cores; "
          f"{cr['envelope_ms_per_payment']:.2f} ms through the envelope codec\n")
        ra = r["ratios"]
        w("ratios (how many times the floor)\n")
        w(f"  throughput   {_f(ra['throughput_vs_broker'], '.1f', '×')} below the broker floor, "
          f"{_f(ra['throughput_vs_crypto'], '.1f', '×')} below the crypto floor\n")
        w(f"  latency      p50 {_f(ra['latency_p50_vs_hops'], '.1f', '×')}, p99 "
          f"{_f(ra['latency_p99_vs_hops'], '.1f', '×')} the hop floor"
          + (f"; p50 {ra['latency_p50_vs_quiet_hops']:.1f}× the quiet hops"
             if ra.get("latency_p50_vs_quiet_hops") is not None else "") + "\n")
        w(f"  CPU          {_f(ra['cpu_vs_crypto'], '.1f', '×')} the crypto floor per payment\n")
    idle = r.get("idle")
    if idle:
        w(f"idle system    {idle['cores_total']:.3f} cores over {idle['seconds']:.0f} s, "
          f"{idle.get('after_quiet_s', 3)} s after the run ("
          + ", ".join(f"{k} {v:.3f}" for k, v in idle["per_process"].items()) + ")\n")
        if not idle.get("settled", True):
            w("               NOTE: the system was still working off a backlog: not an idle "
              "figure\n")
    fc = r["flow"]
    w(f"flow           one purchase = {fc['records']} signed records ({fc['hops']} on its path), "
      f"readers from the {fc['readers_from']}; the steps: "
      + " → ".join(x["topic"].removeprefix("kessai.") for x in fc["steps"] if x["on_path"])
      + "\n")
    path = [x for x in fc["steps"] if x["on_path"]]
    if path and path[-1].get("t_ms") is not None:
        w("               one warm purchase, ms from its command to each record's creation: "
          + ", ".join(f"{x['topic'].removeprefix('kessai.')} {x['t_ms']}" for x in path[1:])
          + "\n")
    rm = r.get("records_measured") or {}
    if rm.get("per_payment") is not None and fc["records"]:
        extra = rm["per_payment"] - fc["records"]
        w(f"               during the measured run {rm['per_payment']:.1f} records per purchase "
          "were produced" + (f" ({extra:+.1f} beyond the flow: "
          + ", ".join(f"{t.removeprefix('kessai.')} {n}" for t, n in rm["by_topic"].items()
                      if t not in {x["topic"] for x in fc["steps"]}) + ")"
                             if abs(extra) >= 0.05 else "") + "\n")
    diff = fc["differs_from_model"]
    if any(diff.values()):
        w(f"               differs from the documented model in sim/floors.py ({diff}); the "
          "floors follow the observed flow\n")
    out.flush()


# -- entry point ---------------------------------------------------------------------------------

def run(args: argparse.Namespace, settings: Settings) -> int:
    plan = plan_from(args)
    agents = check_agents(getattr(args, "agents", None), BENCH_AGENTS)
    # The shop and relay listen on one port each (as `kessai up --replicas`).
    replicas = parse_replicas(getattr(args, "replicas", None), agents,
                              ("shop", "relay", "device", "selector"))
    is_external = bool(getattr(args, "bootstrap", None) or os.environ.get("KESSAI_BOOTSTRAP"))
    progress = Progress(enabled=not args.json)
    if is_external and getattr(args, "agents", None):
        raise ConfigError("--agents chooses the workers the bench starts; with --bootstrap the "
                          "running system's workers are measured (drop one of the two)")
    system = (external(settings) if is_external
              else start_own(settings, agents, keep=args.keep, say=progress.say,
                             replicas=replicas))
    failed = True
    try:
        with progress:
            result = asyncio.run(_drive(system, plan, progress))
            if result.probe.done is None:
                sys.stderr.write(
                    f"kessai bench: LOST: the first purchase reached no final status within "
                    f"{plan.timeout_s:g} s; the system does not settle payments"
                    + (f" (worker logs in {system.log_dir()})" if system.own else "") + "\n")
                return 1
            asyncio.run(_floors(system, plan, progress, result))
            if plan.idle_s > 0:
                result.idle = _idle(system, plan.idle_s, progress)
        r = report(system, plan, result)
        failed = not r["ok"]
    finally:
        system.stop(failed=failed)
    if args.json:
        print(json.dumps(r, ensure_ascii=False))
    else:
        print_report(r)
    if args.plot is not None:
        from sim.plot import plot

        plot(Path(args.plot), result.measured, r)
        if not args.json:
            print(f"plot written to {args.plot}")
    if not r["ok"]:
        where = f"; worker logs kept in {system.log_dir()}" if system.own else ""
        sys.stderr.write(f"kessai bench: FAILED: {r['final']['lost']} purchase(s) lost"
                         + (f", dead workers {', '.join(r['dead_workers'])}"
                            if r["dead_workers"] else "") + where + "\n")
        return 1
    return 0
