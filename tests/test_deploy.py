"""Deployment descriptions stay in step with the code: every command they run is one `vigie` accepts,
and the durability they ask of Kafka (replication factor, min.insync.replicas) fits their brokers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vigie.cli import build_parser
from vigie.core.config import load_yaml_model, validate_yaml_text
from vigie.correlator.config import Routing
from vigie.core.cameras import CamerasFile
from vigie.core.lifecycle import Service, http_app
from vigie.core.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]


def _k8s_documents() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_compose_services_run_valid_vigie_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = {name: svc["command"] for name, svc in compose["services"].items() if "command" in svc}
    assert set(commands) == {"topics", "grabber", "detector", "correlator", "station"}
    for name, command in commands.items():
        args = build_parser().parse_args(command)
        assert args.command == name
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    assert int(compose["services"]["kafka"]["environment"]["KAFKA_LOG_RETENTION_HOURS"]) <= 720


def test_compose_config_when_the_plugin_exists() -> None:
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose plugin not installed here; the YAML is checked by the test above")
    subprocess.run([docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], check=True)


def test_kubernetes_manifests_run_valid_vigie_commands() -> None:
    docs = _k8s_documents()
    kustomization = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (ROOT / "deploy" / "k8s" / resource).exists(), resource
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    assert {d["metadata"]["name"] for d in workloads} >= {
        "vigie-grabber", "vigie-detector", "vigie-correlator", "vigie-station", "vigie-topics"}
    for workload in workloads:
        container = workload["spec"]["template"]["spec"]["containers"][0]
        build_parser().parse_args(container["args"])
    files = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "vigie-files")
    validate_yaml_text(files["data"]["cameras.yaml"], CamerasFile)
    Routing.model_validate(yaml.safe_load(files["data"]["routing.yaml"]))


def test_demo_files_are_valid() -> None:
    assert load_yaml_model(ROOT / "deploy" / "demo" / "routing.yaml", Routing).all_stations() == ["main"]
    for name in ("cameras.yaml", "cameras-synthetic.yaml"):
        validate_yaml_text((ROOT / "deploy" / "demo" / name).read_text(), CamerasFile)


def _merged(base: dict, override: dict) -> dict:
    """``docker compose -f base -f override``'s merge as far as these files need it: mappings merge key by
    key, any other value is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _check_durability(where: str, brokers: int, replication: int, min_insync: int) -> None:
    """Replicas fit the brokers; a write needs fewer in-sync replicas than there are, so one broker may be down."""
    assert 1 <= replication <= brokers, f"{where}: replication factor {replication} with {brokers} broker(s)"
    assert 1 <= min_insync <= replication, f"{where}: min.insync.replicas {min_insync} > replication {replication}"
    if replication > 1:
        assert min_insync < replication, f"{where}: min.insync.replicas {min_insync} leaves no broker to lose"


def _vigie_settings(env: dict) -> KafkaSettings:
    return KafkaSettings(bootstrap=env["VIGIE_KAFKA"], replication_factor=env["VIGIE_KAFKA_REPLICATION_FACTOR"],
                         min_insync_replicas=env["VIGIE_KAFKA_MIN_INSYNC_REPLICAS"])


@pytest.mark.parametrize("files, brokers", [(["docker-compose.yml"], 1),
                                            (["docker-compose.yml", "docker-compose.ha.yml"], 3)])
def test_compose_durability_fits_its_brokers(files: list[str], brokers: int) -> None:
    """Defect: replication was hard-coded to 1 and no deployment had more than one broker. The compose
    stack (one broker: 1 and 1) and its HA variant (three brokers: 3 and 2) say the same to the brokers and
    to every Vigie service, and what they ask fits the brokers."""
    compose: dict = {}
    for name in files:
        compose = _merged(compose, yaml.safe_load((ROOT / name).read_text()))
    services = compose["services"]
    nodes = {name: {k: str(v) for k, v in svc["environment"].items()}
             for name, svc in services.items() if svc.get("image", "").startswith("apache/kafka:")}
    assert len(nodes) == brokers
    assert {env["KAFKA_NODE_ID"] for env in nodes.values()} == {str(n) for n in range(1, brokers + 1)}
    voters = {f"{env['KAFKA_NODE_ID']}@{name}:9093" for name, env in nodes.items()}
    for name, env in nodes.items():
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters, name
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        _check_durability(f"{name} (topics)", brokers, int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]),
                          int(env["KAFKA_MIN_INSYNC_REPLICAS"]))
        _check_durability(f"{name} (transactions)", brokers, int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]),
                          int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]))
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"])
    assert len({env.get("CLUSTER_ID") for env in nodes.values()}) == 1
    node = next(iter(nodes.values()))
    vigie = {name: svc for name, svc in services.items() if "command" in svc}
    assert set(vigie) == {"topics", "grabber", "detector", "correlator", "station"}
    for name, svc in vigie.items():
        settings = _vigie_settings(svc["environment"])
        assert set(settings.bootstrap.split(",")) == {f"{n}:9092" for n in nodes}, name
        _check_durability(name, brokers, settings.replication_factor, settings.min_insync_replicas)
        assert settings.replication_factor == int(node["KAFKA_DEFAULT_REPLICATION_FACTOR"]), name
        assert settings.min_insync_replicas == int(node["KAFKA_MIN_INSYNC_REPLICAS"]), name
        for broker in nodes:
            assert broker in svc["depends_on"] or "topics" in svc["depends_on"], name
    if brokers == 3:
        assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)


def test_kubernetes_durability_fits_the_kafka_cluster() -> None:
    """Defect: the Kubernetes manifests had no Kafka of their own and no durability setting. vigie-config
    asks for 3 replicas and min.insync.replicas 2 on the three-node Strimzi cluster of deploy/k8s/kafka,
    whose brokers say the same, and points at that cluster's bootstrap service."""
    folder = ROOT / "deploy" / "k8s" / "kafka"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((folder / resource).read_text()) if d]
    cluster = next(d for d in docs if d["kind"] == "Kafka")
    name = cluster["metadata"]["name"]
    pools = [d for d in docs if d["kind"] == "KafkaNodePool" and d["metadata"]["labels"]["strimzi.io/cluster"] == name]
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert brokers == 3 and sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) == 3
    config = cluster["spec"]["kafka"]["config"]
    _check_durability("Kafka (topics)", brokers, config["default.replication.factor"], config["min.insync.replicas"])
    _check_durability("Kafka (transactions)", brokers, config["transaction.state.log.replication.factor"],
                      config["transaction.state.log.min.isr"])
    assert config["offsets.topic.replication.factor"] == config["default.replication.factor"]
    plain = next(listener for listener in cluster["spec"]["kafka"]["listeners"] if not listener["tls"])
    env = next(d for d in _k8s_documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "vigie-config")
    settings = _vigie_settings(env["data"])
    assert settings.bootstrap == f"{name}-kafka-bootstrap.{kustomization['namespace']}.svc:{plain['port']}"
    _check_durability("vigie-config", brokers, settings.replication_factor, settings.min_insync_replicas)
    assert (settings.replication_factor, settings.min_insync_replicas) == (
        config["default.replication.factor"], config["min.insync.replicas"]) == (3, 2)


def test_kubernetes_probes_ask_readiness_of_healthz_and_liveness_of_livez() -> None:
    """Defect: /healthz answered 200 while a service was still starting and served as liveness too, so a
    service waiting for its broker or degraded could be restarted for nothing. Readiness asks /healthz
    (503 until ready), liveness /livez (200 while the process is alive), and both exist."""
    routes = {r.resource.canonical for r in http_app(Service(KafkaSettings())).router.routes()}
    assert {"/healthz", "/livez"} <= routes
    deployments = {d["metadata"]["name"]: d for d in _k8s_documents() if d["kind"] == "Deployment"}
    for name in ("vigie-grabber", "vigie-detector", "vigie-station", "vigie-correlator"):  # the correlator's: faust pages
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name
