"""Kubernetes manifests rendered by kustomize (``kubectl kustomize``, or the kustomize binary that
scripts/kustomize.sh builds from the Go module proxy) and checked against real schemas, offline.

* Built-in kinds (Deployment, Job, ConfigMap, HorizontalPodAutoscaler...): the JSON schemas of the
  Kubernetes API that the PyPI package ``kubernetes-validate`` ships, in their strict form (a field the
  API does not know is an error, as ``kubectl apply`` refuses it by default since 1.27).
* Custom resources whose operator publishes its CRDs in a Go module (KEDA's ScaledObject and
  TriggerAuthentication, CloudNativePG's Cluster): the CRD's ``openAPIV3Schema`` from that module's ``config/crd/bases``,
  fetched once with ``go mod download`` (the Go module cache keeps it: offline afterwards), turned into
  a JSON schema that refuses unknown fields as the API server's strict field validation does.
* Strimzi's resources: Strimzi is a Java project whose CRDs are in no Go module or PyPI package, so
  :func:`strimzi_problems` checks their structure (the fields Vigie relies on, their types).

:func:`problems` answers with a list of readable problems, empty when the object is valid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The Kubernetes version the built-in kinds are checked against (autoscaling/v2 and batch/v1 there).
KUBERNETES_VERSION = "1.30"
#: (group/version, kind) -> (Go module, version, CRD file in the module).
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): ("github.com/kedacore/keda/v2", "v2.18.0",
                                           "config/crd/bases/keda.sh_scaledobjects.yaml"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): ("github.com/kedacore/keda/v2", "v2.18.0",
                                                    "config/crd/bases/keda.sh_triggerauthentications.yaml"),
    ("postgresql.cnpg.io/v1", "Cluster"): ("github.com/cloudnative-pg/cloudnative-pg", "v1.27.0",
                                           "config/crd/bases/postgresql.cnpg.io_clusters.yaml"),
}
STRIMZI = "kafka.strimzi.io/v1beta2"


def go() -> str | None:
    """The Go toolchain (on the PATH or in /usr/local/go), None without one."""
    found = shutil.which("go")
    if found is None and os.access("/usr/local/go/bin/go", os.X_OK):
        found = "/usr/local/go/bin/go"
    return found


def kustomize_command() -> list[str] | None:
    """``kubectl kustomize``, or without kubectl ``kustomize build`` built by scripts/kustomize.sh; None
    without either."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    built = ROOT / "var" / "bin" / "kustomize"
    return [str(built), "build"] if built.is_file() else None


def kustomize(folder: Path) -> list[dict]:
    """The objects that kustomize renders from ``folder``. Raises RuntimeError with kustomize's reason when
    the kustomization does not build."""
    done = subprocess.run([*kustomize_command(), str(folder)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"kustomize {folder}: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@cache
def _module_dir(module: str, version: str) -> Path:
    """The folder of Go module ``module@version`` in the module cache (downloaded the first time)."""
    done = subprocess.run([go(), "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True,
                          timeout=600, cwd="/", env={**os.environ, "GOFLAGS": "-mod=mod"})
    info = json.loads(done.stdout or "{}")
    if done.returncode != 0 or "Dir" not in info:
        raise RuntimeError(f"go mod download {module}@{version}: {info.get('Error') or done.stderr.strip()}")
    return Path(info["Dir"])


def _strict(schema: Any) -> Any:
    """An OpenAPI v3 schema of a CRD as a JSON schema: unknown fields refused (unless the CRD keeps them,
    x-kubernetes-preserve-unknown-fields), int-or-string as either, nullable as null allowed."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _strict(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_strict(sub) for sub in value]
        elif not key.startswith("x-kubernetes-") and key != "nullable":
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """The validator of custom resource ``kind`` from its CRD (see :data:`CRDS`). Raises KeyError for a
    kind not in CRDS, RuntimeError when Go cannot fetch its module."""
    module, version, path = CRDS[(api_version, kind)]
    crd = yaml.safe_load((_module_dir(module, version) / path).read_text())
    served = next(v for v in crd["spec"]["versions"] if f"{crd['spec']['group']}/{v['name']}" == api_version)
    schema = _strict(served["schema"]["openAPIV3Schema"])
    return jsonschema.Draft202012Validator(schema)


def _expect(where: str, value: Any, kind: type | tuple, out: list[str]) -> None:
    if not isinstance(value, kind):
        out.append(f"{where}: {value!r} is not {getattr(kind, '__name__', kind)}")


def strimzi_problems(doc: dict) -> list[str]:
    """Structural check of Strimzi's Kafka, KafkaNodePool and KafkaUser (no published schema: see the module)."""
    out: list[str] = []
    spec, kind = doc.get("spec", {}), doc["kind"]
    allowed = {"Kafka": {"kafka", "entityOperator", "cruiseControl", "kafkaExporter", "clientsCa", "clusterCa",
                         "maintenanceTimeWindows", "zookeeper"},
               "KafkaNodePool": {"replicas", "roles", "storage", "resources", "jvmOptions", "template"},
               "KafkaUser": {"authentication", "authorization", "quotas", "template"}}
    if kind not in allowed:
        return [f"{kind}: not a Strimzi kind Vigie uses"]
    out += [f"{kind}.spec.{key}: unknown field" for key in set(spec) - allowed[kind]]
    if kind == "Kafka":
        kafka = spec.get("kafka", {})
        out += [f"Kafka.spec.kafka.{key}: unknown field" for key in set(kafka) - {
            "version", "metadataVersion", "listeners", "config", "authorization", "rack", "resources", "template",
            "jvmOptions", "logging", "metricsConfig"}]
        for listener in kafka.get("listeners", []):
            out += [f"listener {listener.get('name')}: missing {key}" for key in ("name", "port", "type", "tls")
                    if key not in listener]
            _expect(f"listener {listener.get('name')}.port", listener.get("port"), int, out)
            _expect(f"listener {listener.get('name')}.tls", listener.get("tls"), bool, out)
            if listener.get("type") not in ("internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"):
                out.append(f"listener {listener.get('name')}: type {listener.get('type')!r}")
        _expect("Kafka.spec.kafka.config", kafka.get("config", {}), dict, out)
    elif kind == "KafkaNodePool":
        _expect("KafkaNodePool.spec.replicas", spec.get("replicas"), int, out)
        if not spec.get("roles") or not set(spec["roles"]) <= {"controller", "broker"}:
            out.append(f"KafkaNodePool.spec.roles: {spec.get('roles')!r}")
        if spec.get("storage", {}).get("type") not in ("jbod", "persistent-claim", "ephemeral"):
            out.append(f"KafkaNodePool.spec.storage.type: {spec.get('storage', {}).get('type')!r}")
        if "strimzi.io/cluster" not in doc["metadata"].get("labels", {}):
            out.append("KafkaNodePool: no strimzi.io/cluster label")
    return out


def problems(doc: dict) -> list[str]:
    """What is wrong with one Kubernetes object, each problem as ``path: message``; empty when it is valid.
    Raises kubernetes_validate.SchemaNotFoundError for a kind that no schema above covers."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    if api_version == STRIMZI:
        return strimzi_problems(doc)
    if (api_version, kind) in CRDS:
        errors = crd_validator(api_version, kind).iter_errors(doc)
        return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path)) or '(root)'}: {exc.message}"]
    return []
