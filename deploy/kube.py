"""deploy/k8s/*.yaml: namespace, env ConfigMap, topic Job, one Deployment per agent.

The broker is not part of these manifests: point ``KESSAI_BOOTSTRAP`` at your Kafka cluster.
"""

from __future__ import annotations

from typing import Any

from deploy import values
from deploy.yamlout import Note, dump_all

NAMESPACE = "kessai"
CONFIG = "kessai-env"
SECRET = "kessai-keys"
SECRET_NOTE = (
    "Development keys come from `kessai keys init DIR` and are mounted from the Secret\n"
    f"{SECRET}, created once with\n"
    f"  kubectl -n {NAMESPACE} create secret generic {SECRET} "
    "--from-file=DIR/registry.json --from-file=DIR/actors/\n"
    "Each worker sees only the registry and its own actors' private keys.")


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/component": component, "app.kubernetes.io/name": "kessai"}


def _meta(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": _labels(component)}


def _pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": values.UID, "runAsGroup": values.UID,
            "fsGroup": values.UID}


def _container(name: str, args: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "image": values.image(),
        "args": args,
        "envFrom": [{"configMapRef": {"name": CONFIG}}],
        "securityContext": {"allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": _labels("namespace")}}


def config_map() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(CONFIG, "config"),
            Note("data", f"KESSAI_BOOTSTRAP={values.BOOTSTRAP} is a placeholder: point it at "
                 "your Kafka cluster."): values.worker_env()}


def topics_job() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta("kessai-topics", "topics"),
        "spec": {
            "backoffLimit": 10,
            "template": {
                "metadata": {"labels": _labels("topics")},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": _pod_security(),
                    "containers": [_container("topics", ["topics", "create"])],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def _key_items(agent: str) -> list[dict[str, str]]:
    files = ["registry.json"] + [f"actors/{a.replace(':', '_')}.json"
                                 for a in values.actors(agent)]
    return [{"key": f.rpartition("/")[2], "path": f} for f in files]


def data_claim(agent: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(f"kessai-{agent}-data", agent),
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
    }


def deployment(agent: str) -> dict[str, Any]:
    container = _container("worker", ["worker", agent])
    container["volumeMounts"] += [
        {"name": "keys", "mountPath": values.KEYS_DIR, "readOnly": True},
        {"name": "data", "mountPath": values.DATA_DIR},
    ]
    container["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"},
                              "limits": {"memory": "512Mi"}}
    if agent in values.SQLITE_AGENTS:
        data: dict[str, Any] = {"persistentVolumeClaim": {"claimName": f"kessai-{agent}-data"}}
        replicas_note = (f"One replica: {values.SQLITE_AGENTS[agent]} is a local SQLite file "
                         "on this pod's volume,\nwhich a second worker could not share.")
    else:
        data = {"emptyDir": {}}
        replicas_note = values.parallelism_note()
    spec: dict[str, Any] = {
        Note("replicas", replicas_note): values.replicas(agent),
        "selector": {"matchLabels": _labels(agent)},
    }
    if agent in values.SQLITE_AGENTS:
        spec[Note("strategy", "Stop the old pod before the new one opens the same file.")] = {
            "type": "Recreate"}
    spec["template"] = {
        "metadata": {"labels": _labels(agent)},
        "spec": {
            "securityContext": _pod_security(),
            "containers": [container],
            "volumes": [
                {"name": "keys",
                 Note("secret", SECRET_NOTE): {"secretName": SECRET, "defaultMode": 0o440,
                                               "items": _key_items(agent)}},
                {"name": "data", **data},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(f"kessai-{agent}", agent), "spec": spec}


def files() -> dict[str, str]:
    """File name under deploy/k8s → content; names sort in the order kubectl should apply."""
    out = {
        "00-namespace.yaml": dump_all([namespace()], values.HEADER),
        "01-configmap.yaml": dump_all([config_map()], values.HEADER),
        "02-topics-job.yaml": dump_all([topics_job()], values.HEADER + "\n\nCreates every "
                                       "catalogued topic; apply it and wait for it to "
                                       "complete\nbefore the agents' Deployments."),
    }
    for agent in values.agents():
        docs = [data_claim(agent)] if agent in values.SQLITE_AGENTS else []
        out[f"10-{agent}.yaml"] = dump_all([*docs, deployment(agent)], values.HEADER)
    return out
