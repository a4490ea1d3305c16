"""The Kubernetes manifests build and are valid: `kubectl kustomize` of every kustomization under deploy/
(the base, deploy/k8s-sasl, the Kafka and PostgreSQL clusters, every overlay of deploy/k8s-overlays), each
object checked against its schema (tests/k8s_schemas.py says which), and a manifest broken on purpose is
refused. The autoscaling and GPU components say what the code does: consumer group, topic, partitions,
device option."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.k8s_schemas import CRDS, STRIMZI, go, kustomize, kustomize_command, problems
from vigie.cli import build_parser
from vigie.core.metrics import ServiceMetrics
from vigie.core.topics import CAMERA_PARTITIONS, Topics
from vigie.detector.app import GROUP

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
#: Every folder whose kustomization.yaml is a Kustomization (Components are built through the overlays).
KUSTOMIZATIONS = sorted(p.parent.relative_to(ROOT).as_posix() for p in DEPLOY.rglob("kustomization.yaml")
                        if yaml.safe_load(p.read_text())["kind"] == "Kustomization")
pytestmark = pytest.mark.skipif(kustomize_command() is None, reason="neither kubectl nor kustomize (make "
                                "system-deps-test builds kustomize with Go: scripts/kustomize.sh)")
needs_go = pytest.mark.skipif(go() is None, reason="no Go toolchain: the CRDs of KEDA and CloudNativePG come from "
                              "their Go modules (go mod download)")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    """Every kustomization of :data:`KUSTOMIZATIONS`, rendered."""
    return {folder: kustomize(ROOT / folder) for folder in KUSTOMIZATIONS}


def _by_name(docs: list[dict], kind: str, name: str) -> dict:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def _detector_args(deployment: dict):  # noqa: ANN202
    return build_parser().parse_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"])


@needs_go
def test_every_kustomization_builds_and_every_object_is_valid(rendered: dict[str, list[dict]]) -> None:
    """No kustomization is left out, each builds, and every object it renders passes its schema; the custom
    resources are those of KEDA, CloudNativePG (their CRDs) and Strimzi (checked structurally)."""
    assert set(KUSTOMIZATIONS) >= {"deploy/k8s", "deploy/k8s-sasl", "deploy/k8s/kafka", "deploy/k8s/postgres",
                                   "deploy/k8s-overlays/keda", "deploy/k8s-overlays/hpa", "deploy/k8s-overlays/gpu",
                                   "deploy/k8s-overlays/gpu-keda", "deploy/k8s-overlays/sasl-keda"}
    used = {(ROOT / folder / component).resolve() for folder in KUSTOMIZATIONS
            for component in yaml.safe_load((ROOT / folder / "kustomization.yaml").read_text()).get("components", [])}
    assert set((DEPLOY / "k8s-components").iterdir()) <= used  # every component is built by some overlay
    kinds = set()
    for folder, docs in rendered.items():
        assert docs, folder
        for doc in docs:
            assert problems(doc) == [], (folder, doc["kind"], doc["metadata"]["name"])
            kinds.add((doc["apiVersion"], doc["kind"]))
    assert set(CRDS) <= kinds and (STRIMZI, "Kafka") in kinds
    assert {("apps/v1", "Deployment"), ("batch/v1", "Job"), ("autoscaling/v2", "HorizontalPodAutoscaler")} <= kinds


#: Broken on purpose, each in a kustomization of its own over a real one: (base, patch, problem expected).
BROKEN = [
    ("deploy/k8s-overlays/gpu", {"target": {"kind": "Deployment", "name": "vigie-detector"}, "patch": yaml.safe_dump(
        [{"op": "add", "path": "/spec/template/spec/containers/0/resource", "value": {}}])},
     "'resource' was unexpected"),
    ("deploy/k8s-overlays/hpa", {"target": {"kind": "HorizontalPodAutoscaler"}, "patch": yaml.safe_dump(
        [{"op": "replace", "path": "/spec/maxReplicas", "value": "six"}])}, "is not of type 'integer'"),
    ("deploy/k8s-overlays/keda", {"target": {"kind": "ScaledObject"}, "patch": yaml.safe_dump(
        [{"op": "add", "path": "/spec/maxReplicas", "value": 6}])}, "'maxReplicas' was unexpected"),
    ("deploy/k8s-overlays/keda", {"target": {"kind": "ScaledObject"}, "patch": yaml.safe_dump(
        [{"op": "replace", "path": "/spec/triggers/0/metadata/lagThreshold", "value": 300}])},
     "300 is not of type 'string'"),
    ("deploy/k8s-overlays/sasl-keda", {"target": {"kind": "TriggerAuthentication"}, "patch": yaml.safe_dump(
        [{"op": "add", "path": "/spec/secretTargetRef/0/secret", "value": "vigie-kafka"}])},
     "'secret' was unexpected"),
    ("deploy/k8s/postgres", {"target": {"kind": "Cluster"}, "patch": yaml.safe_dump(
        [{"op": "add", "path": "/spec/instance", "value": 3}])}, "'instance' was unexpected"),
    ("deploy/k8s/kafka", {"target": {"kind": "KafkaNodePool"}, "patch": yaml.safe_dump(
        [{"op": "replace", "path": "/spec/roles", "value": ["broker", "zookeeper"]}])}, "KafkaNodePool.spec.roles"),
]


@needs_go
@pytest.mark.parametrize("base, patch, expected", BROKEN, ids=[f"{b[0]}:{b[2]}" for b in BROKEN])
def test_a_broken_manifest_is_refused(tmp_path: Path, base: str, patch: dict, expected: str) -> None:
    """The checks are not a no-op: a wrong field, a wrong type, a field moved to where it does not exist, in
    a built-in kind, a custom resource with a CRD and one without, each makes its object invalid."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / base, tmp_path)], "patches": [patch]}))
    found = [p for doc in kustomize(tmp_path) for p in problems(doc)]
    assert len(found) == 1 and expected in found[0], found


def test_a_kustomization_naming_a_missing_file_does_not_build(tmp_path: Path) -> None:
    """kubectl's refusal reaches the test: a component that does not exist fails the build, named."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "deploy" / "k8s", tmp_path)], "components": ["missing"]}))
    with pytest.raises(RuntimeError, match="missing"):
        kustomize(tmp_path)


def test_detectors_scale_on_the_lag_of_frames(rendered: dict[str, list[dict]]) -> None:
    """KEDA and the HPA alternative ask the same: the detector's consumer group and topic (from the code),
    the cluster of vigie-config, 2 to CAMERA_PARTITIONS replicas (more would sit idle), one per 300 frames
    of lag; the Deployment they scale leaves spec.replicas to them, and nothing else changes."""
    base = rendered["deploy/k8s"]
    kafka = _by_name(base, "ConfigMap", "vigie-config")["data"]["VIGIE_KAFKA"]
    keda = rendered["deploy/k8s-overlays/keda"]
    scaled = _by_name(keda, "ScaledObject", "vigie-detector")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == GROUP and trigger["metadata"]["topic"] == Topics().frames.name
    assert trigger["metadata"]["bootstrapServers"] == kafka
    assert trigger["metadata"]["allowIdleConsumers"] == "false"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "vigie-detector" and scaled["metadata"]["namespace"] == "vigie"
    assert 2 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"] <= CAMERA_PARTITIONS
    hpa = _by_name(rendered["deploy/k8s-overlays/hpa"], "HorizontalPodAutoscaler", "vigie-detector")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": trigger["metadata"]["lagThreshold"]}
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vigie-detector"}
    for overlay in ("deploy/k8s-overlays/keda", "deploy/k8s-overlays/hpa"):
        docs = rendered[overlay]
        detector = _by_name(docs, "Deployment", "vigie-detector")
        assert "replicas" not in detector["spec"], overlay
        expected = copy.deepcopy(_by_name(base, "Deployment", "vigie-detector"))
        del expected["spec"]["replicas"]
        assert detector == expected, overlay
        assert [d for d in docs if d["kind"] not in ("ScaledObject", "HorizontalPodAutoscaler")
                and d["metadata"]["name"] != "vigie-detector"] == [d for d in base if d["metadata"]["name"] != "vigie-detector"]


def test_keda_logs_in_as_the_services_do_over_sasl(rendered: dict[str, list[dict]]) -> None:
    """With deploy/k8s-sasl, KEDA's scaler reads the lag on the services' listener with their login: SCRAM-SHA-512
    over TLS, the user name of the detector's vigie-config, the password and CA of the Secret the detector mounts."""
    docs = rendered["deploy/k8s-overlays/sasl-keda"]
    config = _by_name(docs, "ConfigMap", "vigie-config")["data"]
    (trigger,) = _by_name(docs, "ScaledObject", "vigie-detector")["spec"]["triggers"]
    assert trigger["metadata"]["bootstrapServers"] == config["VIGIE_KAFKA"]
    assert (config["VIGIE_KAFKA_SECURITY_PROTOCOL"], config["VIGIE_KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (trigger["metadata"]["sasl"], trigger["metadata"]["tls"]) == ("scram_sha512", "enable")
    auth = _by_name(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]
    detector = _by_name(docs, "Deployment", "vigie-detector")["spec"]["template"]["spec"]
    (env,) = auth["env"]
    assert env["containerName"] == detector["containers"][0]["name"] and env["name"] in config
    assert env["parameter"] == "username" and config[env["name"]] == "vigie"
    mounts = {m["mountPath"]: m["name"] for m in detector["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in detector["volumes"]}
    files = {config["VIGIE_KAFKA_SASL_PASSWORD_FILE"]: "password", config["VIGIE_KAFKA_SSL_CAFILE"]: "ca"}
    for path, parameter in files.items():
        folder, _, key = path.rpartition("/")
        assert {"parameter": parameter, "name": volumes[mounts[folder]], "key": key} in auth["secretTargetRef"]


def test_the_prometheus_adapter_rule_serves_the_hpa_metric(rendered: dict[str, list[dict]]) -> None:
    """The adapter's rule names the HPA's metric, reads vigie_consumer_lag (a metric every service exports)
    of the pods labelled as the detector's, and sums it (the group's lag)."""
    (rule,) = yaml.safe_load((DEPLOY / "k8s-components" / "hpa" / "prometheus-adapter-rules.yaml").read_text()
                             )["rules"]["external"]
    hpa = _by_name(rendered["deploy/k8s-overlays/hpa"], "HorizontalPodAutoscaler", "vigie-detector")
    assert rule["name"]["as"] == hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
    lag = ServiceMetrics("detector", CollectorRegistry()).consumer_lag.describe()[0].name
    component = _by_name(rendered["deploy/k8s"], "Deployment", "vigie-detector")["spec"]["template"]["metadata"][
        "labels"]["app.kubernetes.io/component"]
    selector = f'app_kubernetes_io_component="{component}"'
    assert rule["seriesQuery"].startswith(lag + "{") and selector in rule["seriesQuery"]
    assert rule["metricsQuery"].startswith(f"sum by (<<.GroupBy>>) ({lag}{{<<.LabelMatchers>>,")
    assert selector in rule["metricsQuery"] and rule["resources"]["overrides"]["namespace"] == {"resource": "namespace"}


def test_gpu_detectors_ask_for_a_gpu_and_cuda(rendered: dict[str, list[dict]]) -> None:
    """The GPU overlay: one nvidia.com/gpu per detector (requests and limits), GPU nodes selected and their
    taint tolerated, `--device cuda` (no silent CPU fallback); the base stays CPU (`auto`, no GPU asked)
    and every other object is the base's. With KEDA too, both hold."""
    base = rendered["deploy/k8s"]
    assert _detector_args(_by_name(base, "Deployment", "vigie-detector")).device == "auto"
    assert "nvidia.com/gpu" not in yaml.safe_dump(base)
    for overlay in ("deploy/k8s-overlays/gpu", "deploy/k8s-overlays/gpu-keda"):
        docs = rendered[overlay]
        detector = _by_name(docs, "Deployment", "vigie-detector")
        pod = detector["spec"]["template"]["spec"]
        resources = pod["containers"][0]["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1, overlay
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        args = _detector_args(detector)
        assert (args.command, args.device, args.batch) == ("detector", "cuda", 256), overlay
        others = [d for d in docs if d["metadata"]["name"] != "vigie-detector"]
        assert others == [d for d in base if d["metadata"]["name"] != "vigie-detector"], overlay
    assert "replicas" not in _by_name(rendered["deploy/k8s-overlays/gpu-keda"], "Deployment", "vigie-detector")["spec"]
    assert _by_name(rendered["deploy/k8s-overlays/gpu"], "Deployment", "vigie-detector")["spec"]["replicas"] == 2


def test_kafka_brokers_spread_over_kubernetes_nodes(rendered: dict[str, list[dict]]) -> None:
    """The three Strimzi brokers never share a Kubernetes node: losing a node costs one replica of each
    partition, which min.insync.replicas 2 survives."""
    pool = _by_name(rendered["deploy/k8s/kafka"], "KafkaNodePool", "nodes")
    terms = pool["spec"]["template"]["pod"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == [{"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {
        "strimzi.io/cluster": pool["metadata"]["labels"]["strimzi.io/cluster"], "strimzi.io/pool-name": "nodes"}}}]
