"""deploy/ is generated from the topic catalogue: up to date, complete, and least-privilege."""

from __future__ import annotations

import json

import pytest

from agents import AGENTS
from deploy import acls, compose, generate, kube, values
from deploy.yamlout import Note, dump, scalar
from topics.catalogue import CATALOGUE, READS_EVERY_TOPIC, by_name

SHOP = acls.principal("shop")


def test_committed_files_are_up_to_date():
    assert generate.stale() == [], "run 'python -m deploy.generate'"


def test_check_names_missing_changed_and_orphaned_files(tmp_path):
    assert generate.stale(tmp_path) == sorted(generate.render())
    generate.write(tmp_path)
    assert generate.stale(tmp_path) == []
    (tmp_path / "acls.txt").write_text("edited by hand\n")
    (tmp_path / "k8s" / "99-left-over.yaml").write_text("kind: ConfigMap\n")
    assert generate.stale(tmp_path) == ["acls.txt", "k8s/99-left-over.yaml"]
    assert generate.write(tmp_path) == ["acls.txt", "k8s/99-left-over.yaml"]
    assert generate.stale(tmp_path) == []
    assert not (tmp_path / "k8s" / "99-left-over.yaml").exists()


def test_output_is_deterministic(monkeypatch, tmp_path):
    first = generate.render()
    monkeypatch.setenv("KESSAI_KEYS", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("KESSAI_BOOTSTRAP", "somewhere:1234")
    assert generate.render() == first


def test_one_compose_service_per_agent():
    services = compose.document()["services"]
    workers = {name: s for name, s in services.items() if s.get("command", [""])[0] == "worker"}
    assert sorted(workers) == sorted(AGENTS)
    for name, service in workers.items():
        assert service["command"] == ["worker", name]
        assert service["environment"]["KESSAI_BOOTSTRAP"] == "kafka:9092"
        assert service["environment"]["KESSAI_KEYS"] == "/keys"
        assert service["environment"]["KESSAI_DATA"] == "/data"
        assert service["depends_on"]["kafka"] == {"condition": "service_healthy"}
        for one_shot in ("topics", "keys"):
            assert service["depends_on"][one_shot] == {
                "condition": "service_completed_successfully"}
        assert service["restart"] == "unless-stopped"
    assert workers["settlement"]["deploy"] == {"replicas": 2}
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["kafka"]["image"] == "apache/kafka:3.9.0"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_one_deployment_per_agent():
    files = kube.files()
    deployments = [kube.deployment(a) for a in sorted(AGENTS)]
    assert {d["metadata"]["name"] for d in deployments} == {f"kessai-{a}" for a in AGENTS}
    for agent, d in zip(sorted(AGENTS), deployments, strict=True):
        container = d["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["worker", agent]
        assert f"kind: Deployment\nmetadata:\n  name: kessai-{agent}\n" in files[f"10-{agent}.yaml"]
    replicas = {a: kube.deployment(a)["spec"]["replicas"] for a in AGENTS}
    assert replicas["settlement"] == 2
    assert replicas["issuer"] == replicas["shop"] == 1


def test_each_pod_mounts_only_its_own_private_keys():
    for agent in AGENTS:
        volumes = kube.deployment(agent)["spec"]["template"]["spec"]["volumes"]
        secret = next(v["secret"] for v in volumes if v["name"] == "keys")
        assert secret["secretName"] == "kessai-keys"
        paths = {item["path"] for item in secret["items"]}
        assert paths == {"registry.json"} | {f"actors/{a}.json" for a in values.actors(agent)}
    assert "actors/settlement.json" not in str(kube.deployment("shop"))


def test_shop_is_denied_the_second_settlement_request():
    """Spec R20 (seed 003) as configuration: the shop may not consume settle.req.second, nor
    the authorization requests that carry the account sealed to the FI host."""
    grants = acls.grants()
    for name in ("kessai.settlement.second", "kessai.authorizations"):
        assert by_name(name).may_hold_sealed_secrets
        assert not acls.allowed(grants, SHOP, "Read", "topic", name)
    assert "User:shop --operation Read --topic kessai.settlement.second" not in \
        generate.render()["acls.txt"]


def test_sealed_secret_topics_are_readable_only_by_their_catalogue_readers():
    grants = acls.grants()
    principals = {g.principal for g in grants}
    for topic in (t for t in CATALOGUE if t.may_hold_sealed_secrets):
        readers = {p for p in principals if acls.allowed(grants, p, "Read", "topic", topic.name)}
        assert readers == {acls.principal(r) for r in (*topic.readers, *READS_EVERY_TOPIC)}, \
            topic.name


def test_every_topic_has_a_writer_and_a_reader_grant():
    grants = acls.grants()
    text = generate.render()["acls.txt"]
    for topic in CATALOGUE:
        writers = {g.principal for g in grants
                   if g.operation == "Write" and g.pattern_type == "literal"
                   and g.covers("topic", topic.name)}
        readers = {g.principal for g in grants
                   if g.operation == "Read" and g.pattern_type == "literal"
                   and g.covers("topic", topic.name)}
        assert writers == {acls.principal(p) for p in topic.producers} != set()
        assert readers == {acls.principal(r)
                           for r in (*topic.readers, *READS_EVERY_TOPIC)} != set()
        assert f"--topic {topic.name}\n" in text


def test_acl_files_hold_one_sorted_line_per_grant():
    grants = acls.grants()
    files = generate.render()
    lines = [line for line in files["acls.txt"].splitlines() if not line.startswith("#")]
    assert lines == sorted(lines) == sorted(g.command() for g in grants)
    assert len(set(lines)) == len(lines)
    assert lines[0].startswith("kafka-acls.sh --bootstrap-server kafka:9092 --add "
                               "--allow-principal User:")
    assert json.loads(files["acls.json"]) == [g.to_json() for g in grants]
    for agent in AGENTS:
        assert acls.allowed(grants, acls.principal(agent), "Read", "group", f"kessai-{agent}")


@pytest.mark.parametrize(("value", "text"), [
    ("kafka:9092", "kafka:9092"), ("no", '"no"'), ("1", '"1"'), ("on", '"on"'),
    ("a b", '"a b"'), ("x: y", '"x: y"'), ("-c", '"-c"'), ("#", '"#"'), ("", '""'),
    ("1@localhost:9093", '"1@localhost:9093"'), (True, "true"), (7, "7"), (None, "null"),
])
def test_scalars_are_quoted_unless_plain_is_unambiguous(value, text):
    assert scalar(value) == text


def test_emitter_writes_comments_and_nested_blocks():
    doc = {"a": [{"b": 1, Note("c", "why"): []}, ["x"]], "d": {}}
    assert dump(doc) == "a:\n  - b: 1\n    # why\n    c: []\n  -\n    - x\nd: {}\n"


def test_generated_yaml_parses_back_to_the_same_data():
    yaml = pytest.importorskip("yaml")
    files = generate.render()
    assert yaml.safe_load(files["compose.yaml"]) == compose.document()
    for name, text in kube.files().items():
        docs = list(yaml.safe_load_all(text))
        assert docs and all(isinstance(d, dict) and d["kind"] for d in docs), name
    parsed = yaml.safe_load(kube.files()["10-settlement.yaml"])
    assert parsed == kube.deployment("settlement")
