"""deploy/compose.yaml: Apache Kafka in KRaft mode, topic provisioning, dev keys, one service
per agent."""

from __future__ import annotations

from typing import Any

from deploy import values
from deploy.yamlout import Note, dump_all

KAFKA_IMAGE = "apache/kafka:3.9.0"


def _build() -> dict[str, str]:
    # Paths are relative to this file: the build context is the repository root.
    return {"context": "..", "dockerfile": "deploy/Dockerfile"}


def kafka() -> dict[str, Any]:
    env = {
        "CLUSTER_ID": values.cluster_id(),
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{values.BOOTSTRAP}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_LOG_DIRS": "/tmp/kraft-combined-logs",
        Note("KAFKA_AUTO_CREATE_TOPICS_ENABLE",
             "Topics come only from the catalogue (the `topics` service), never from a\n"
             "metadata request: a topic auto-created with the broker's default partition\n"
             "count would break the settlement join's co-partitioning."): "false",
    }
    return {
        "image": KAFKA_IMAGE,
        "hostname": "kafka",
        "environment": env,
        "healthcheck": {
            "test": ["CMD-SHELL", "/opt/kafka/bin/kafka-broker-api-versions.sh "
                     "--bootstrap-server localhost:9092 > /dev/null 2>&1"],
            "interval": "5s",
            "timeout": "10s",
            "retries": 30,
            "start_period": "10s",
        },
        "restart": "unless-stopped",
    }


def topics() -> dict[str, Any]:
    return {
        "build": _build(),
        "image": values.image(),
        "command": ["topics", "create"],
        "environment": {"KESSAI_BOOTSTRAP": values.BOOTSTRAP},
        "depends_on": {"kafka": {"condition": "service_healthy"}},
        "restart": "no",
    }


def keys() -> dict[str, Any]:
    registry = f"{values.KEYS_DIR}/registry.json"
    return {
        "build": _build(),
        "image": values.image(),
        Note("entrypoint", "Idempotent: an existing key set in the volume is kept."):
            ["sh", "-c", f"test -f {registry} || kessai keys init {values.KEYS_DIR}"],
        "volumes": [f"keys:{values.KEYS_DIR}"],
        "restart": "no",
    }


def _ready() -> dict[str, dict[str, str]]:
    return {
        "kafka": {"condition": "service_healthy"},
        "keys": {"condition": "service_completed_successfully"},
        "topics": {"condition": "service_completed_successfully"},
    }


def worker(agent: str) -> dict[str, Any]:
    service: dict[str, Any] = {
        "build": _build(),
        "image": values.image(),
        "command": ["worker", agent],
        "environment": values.worker_env(),
        "volumes": [f"keys:{values.KEYS_DIR}:ro"],
        "depends_on": _ready(),
        "restart": "unless-stopped",
    }
    if agent in values.SQLITE_AGENTS:
        service["volumes"].append(f"{agent}-data:{values.DATA_DIR}")
    if values.replicas(agent) > 1:
        service[Note("deploy", values.parallelism_note())] = {"replicas": values.replicas(agent)}
    return service


def tools() -> dict[str, Any]:
    return {
        "build": _build(),
        "image": values.image(),
        "profiles": ["tools"],
        "command": ["--help"],
        "environment": values.worker_env(),
        "volumes": [f"keys:{values.KEYS_DIR}:ro"],
        "depends_on": _ready(),
    }


def document() -> dict[str, Any]:
    services: dict[str, Any] = {"kafka": kafka(), "topics": topics(), "keys": keys()}
    services.update({a: worker(a) for a in values.agents()})
    services[Note("kessai", "The CLI against this stack, e.g.\n"
                  "docker compose -f deploy/compose.yaml run --rm kessai pay --json")] = tools()
    volumes: dict[str, Any] = {"keys": {}}
    volumes.update({f"{a}-data": {} for a in sorted(values.SQLITE_AGENTS)})
    return {"name": "kessai", "services": services, "volumes": volumes}


def render() -> str:
    header = (
        f"{values.HEADER}\n\n"
        "Run from the repository root:  docker compose -f deploy/compose.yaml up --build\n"
        "One Apache Kafka broker (KRaft, combined broker and controller), the catalogue's\n"
        "topics, a development key set in the `keys` volume, and one service per agent.\n"
        "The broker listens in plaintext without an authorizer: deploy/acls.txt is for a\n"
        "cluster with SASL and an authorizer.\n"
        f"kessai/settings.py keeps consumer-group timeouts short ({values.group_timeouts()})\n"
        "because the embedded broker holds every JoinGroup for the whole rebalance timeout;\n"
        "on a real Kafka cluster they can be raised there.")
    return dump_all([document()], header)
