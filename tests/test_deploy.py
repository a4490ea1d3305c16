"""Deployment descriptions stay in step with the code: every command they run is one `vigie` accepts."""

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
