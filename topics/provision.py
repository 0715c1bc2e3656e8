"""Provisioning: make the broker hold every catalogued topic, and say where it differs.

``create_all`` is idempotent (existing topics are left alone, never altered), ``describe``
compares the broker with the catalogue, ``list_topics`` shows what the broker holds. The
``kessai topics {list,create,describe}`` commands are thin wrappers in ``run_cli``.

Only whole-cluster metadata requests are sent: the embedded Tansu broker (like Kafka with
``auto.create.topics.enable``) creates any topic a metadata request names, so asking about one
missing topic would create it with the broker's default partition count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from kessai.broker import wait_reachable
from kessai.errors import BrokerUnavailable, ConfigError
from kessai.settings import Settings
from topics.catalogue import CATALOGUE, TopicSpec

CONNECT_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_MS = 10_000
_TOPIC_ALREADY_EXISTS = 36
_COMPARED_CONFIGS = ("cleanup.policy", "retention.ms")


@dataclass(frozen=True)
class Report:
    """What the broker holds for one topic, next to what the catalogue expects.

    ``configs`` holds only what the broker reported; a config it did not report is unknown
    and never counts as drift.
    """

    topic: str
    in_catalogue: bool
    exists: bool
    partitions: int | None = None
    expected_partitions: int | None = None
    configs: dict[str, str] = field(default_factory=dict)
    expected_configs: dict[str, str] = field(default_factory=dict)
    created: bool = False
    drift: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic, "in_catalogue": self.in_catalogue, "exists": self.exists,
            "partitions": self.partitions, "expected_partitions": self.expected_partitions,
            "configs": self.configs, "expected_configs": self.expected_configs,
            "created": self.created, "drift": list(self.drift),
        }


def drift_of(spec: TopicSpec, partitions: int | None, configs: dict[str, str]) -> tuple[str, ...]:
    """How the broker's topic (``partitions`` None = missing) differs from ``spec``."""
    if partitions is None:
        return ("missing",)
    found = []
    if partitions != spec.partitions:
        found.append(f"partitions: {partitions} on the broker, {spec.partitions} in the catalogue")
    for name, expected in spec.configs().items():
        actual = configs.get(name)
        if actual is not None and actual != expected:
            found.append(f"{name}: {actual} on the broker, {expected} in the catalogue")
    return tuple(found)


def _unavailable(settings: Settings, exc: BaseException) -> BrokerUnavailable:
    detail = str(exc) or type(exc).__name__
    return BrokerUnavailable(f"the Kafka broker at {settings.bootstrap} did not answer ({detail}); "
                             "check it runs or pass --bootstrap HOST:PORT")


@asynccontextmanager
async def admin(settings: Settings,
                connect_timeout_s: float = CONNECT_TIMEOUT_S) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client; an absent or silent broker becomes BrokerUnavailable.

    The plain TCP probe comes first so that aiokafka never gets to log its own connection
    errors: an unreachable broker gives exactly one line on stderr.
    """
    await asyncio.to_thread(wait_reachable, settings.bootstrap, connect_timeout_s)
    client = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap,
                                 client_id=f"{settings.client_id_prefix}-admin",
                                 request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        # Something that accepts TCP but never speaks Kafka would otherwise hang here.
        await asyncio.wait_for(client.start(), connect_timeout_s * 2)
    except (KafkaError, OSError, TimeoutError) as exc:
        await client.close()
        raise _unavailable(settings, exc) from None
    try:
        yield client
    except KafkaError as exc:
        raise _unavailable(settings, exc) from None
    finally:
        await client.close()


async def _partition_counts(client: AIOKafkaAdminClient) -> dict[str, int]:
    # No topic names: a metadata request that names a missing topic may create it.
    return {t["topic"]: len(t["partitions"]) for t in await client.describe_topics()
            if t["error_code"] == 0}


async def _configs(client: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """The compared configs the broker reports per topic; absent when it reports nothing."""
    if not names:
        return {}
    # Ask for every config and filter here: Tansu drops the connection on a request that
    # names config keys.
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    try:
        responses = await client.describe_configs(resources)
    except KafkaError:
        return {}  # a broker without DescribeConfigs: every config is unknown
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for res in response.to_object()["resources"]:
            if res["error_code"] != 0:
                continue
            found[res["resource_name"]] = {
                e["config_names"]: e["config_value"] for e in res["config_entries"]
                if e["config_names"] in _COMPARED_CONFIGS and e["config_value"] is not None}
    return found


async def broker_topics(settings: Settings) -> dict[str, int]:
    """Every topic on the broker with its partition count."""
    async with admin(settings) as client:
        return await _partition_counts(client)


async def list_topics(settings: Settings) -> list[Report]:
    """The broker's topics, each marked with whether the catalogue names it."""
    catalogued = {t.name for t in CATALOGUE}
    counts = await broker_topics(settings)
    return [Report(name, name in catalogued, True, partitions=n)
            for name, n in sorted(counts.items())]


async def create_all(settings: Settings,
                     catalogue: Sequence[TopicSpec] | None = None) -> list[Report]:
    """Create every catalogued topic the broker lacks; existing topics are left as they are.

    Returns one report per catalogued topic; ``created`` marks those made by this call.
    Raises ConfigError if the broker refuses a topic, BrokerUnavailable if it does not answer.
    """
    specs = list(CATALOGUE if catalogue is None else catalogue)
    async with admin(settings) as client:
        counts = await _partition_counts(client)
        missing = [s for s in specs if s.name not in counts]
        created: set[str] = set()
        if missing:
            brokers = len((await client.describe_cluster())["brokers"])
            # Three copies where the cluster has them; a single-node dev broker gets one.
            replication = max(1, min(3, brokers))
            response = await client.create_topics(
                [NewTopic(s.name, s.partitions, replication, topic_configs=s.configs())
                 for s in missing], timeout_ms=REQUEST_TIMEOUT_MS)
            for err in response.to_object()["topic_errors"]:
                if err["error_code"] == 0:
                    created.add(err["topic"])
                elif err["error_code"] != _TOPIC_ALREADY_EXISTS:  # lost a race: fine
                    why = err["error_message"] or f"error code {err['error_code']}"
                    raise ConfigError(f"the broker refused to create {err['topic']}: {why}")
            counts = await _partition_counts(client)
    return [Report(s.name, True, s.name in counts, partitions=counts.get(s.name),
                   expected_partitions=s.partitions, expected_configs=s.configs(),
                   created=s.name in created) for s in specs]


async def describe(settings: Settings, names: Sequence[str] | None = None,
                   catalogue: Sequence[TopicSpec] | None = None) -> list[Report]:
    """Compare the broker with the catalogue: existence, partitions and compared configs.

    ``names`` restricts the report (default: every catalogued topic). A named topic outside
    the catalogue is described as found, without drift; one that is nowhere is a ConfigError.
    """
    specs = {s.name: s for s in (CATALOGUE if catalogue is None else catalogue)}
    wanted = list(specs) if names is None else list(names)
    async with admin(settings) as client:
        counts = await _partition_counts(client)
        for name in wanted:
            if name not in specs and name not in counts:
                raise ConfigError(f"topic {name!r} is neither in the catalogue nor on the broker "
                                  "(see 'kessai topics list')")
        configs = await _configs(client, [n for n in wanted if n in counts])
    reports = []
    for name in wanted:
        spec = specs.get(name)
        found = configs.get(name, {})
        reports.append(Report(
            name, spec is not None, name in counts, partitions=counts.get(name),
            expected_partitions=spec.partitions if spec else None, configs=found,
            expected_configs=spec.configs() if spec else {},
            drift=drift_of(spec, counts.get(name), found) if spec else ()))
    return reports


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    lines = [header, *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def _opt(value: object) -> str:
    return "?" if value is None else str(value)


def _render(command: str, reports: Sequence[Report]) -> str:
    if not reports:
        return "(no topics)"
    if command == "list":
        return _table(("TOPIC", "PARTITIONS", "CATALOGUE"),
                      [(r.topic, _opt(r.partitions), "yes" if r.in_catalogue else "no")
                       for r in reports])
    if command == "create":
        return _table(("TOPIC", "PARTITIONS", "STATUS"),
                      [(r.topic, _opt(r.partitions), "created" if r.created else "exists")
                       for r in reports])
    return _table(
        ("TOPIC", "EXISTS", "PARTITIONS", "CLEANUP", "RETENTION_MS", "DRIFT"),
        [(r.topic, "yes" if r.exists else "no",
          f"{_opt(r.partitions)}/{_opt(r.expected_partitions)}",
          _opt(r.configs.get("cleanup.policy")), _opt(r.configs.get("retention.ms")),
          "; ".join(r.drift) or "-") for r in reports])


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    """``kessai topics {list,create,describe} [--json]``; describe exits 1 on any drift."""
    command = args.topics_command
    if command == "list":
        reports = asyncio.run(list_topics(settings))
    elif command == "create":
        reports = asyncio.run(create_all(settings))
    else:
        topic = getattr(args, "topic", None)
        reports = asyncio.run(describe(settings, [topic] if topic else None))
    if args.json:
        for r in reports:
            print(json.dumps(r.to_json(), sort_keys=True))
    else:
        print(_render(command, reports))
    if command == "create" and not args.json:
        made = sum(r.created for r in reports)
        print(f"{made} topic(s) created, {len(reports) - made} already existed")
    drifted = [r.topic for r in reports if r.drift]
    if command == "describe" and drifted:
        sys.stderr.write(f"kessai: {len(drifted)} topic(s) differ from the catalogue: "
                         f"{', '.join(drifted)} (run 'kessai topics create' for missing ones)\n")
        return 1
    return 0
