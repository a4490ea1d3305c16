"""Monitoring: deploy/prometheus's configuration and alert rules pass promtool and fire on synthetic series,
name only metrics the services export, and a real Prometheus scrapes a running station and fires a rule on it.

The metrics' source of truth is the code: every ``Counter``/``Gauge``/``Histogram``/``GaugeMetricFamily``
named ``vigie_...`` under services/vigie (with the suffixes their exposition adds), checked in turn
against what a running station really exports through Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.stack import free_port, terminate
from tests.station_support import logged_in_station

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus, "
                                    "scripts/system-deps.sh)")
#: Names Prometheus itself makes: every target's ``up``, the rules' ``ALERTS``.
PROMETHEUS_OWN = {"up", "ALERTS"}
DASHBOARD = ROOT / "deploy" / "grafana" / "vigie-dashboard.json"
#: What each kind of metric adds to its name in the exposition.
SUFFIXES = {"Counter": ("_total", "_created"), "Histogram": ("_bucket", "_sum", "_count", "_created"),
            "Gauge": ("",), "GaugeMetricFamily": ("",)}


def declared_metrics() -> set[str]:
    """Every sample name the services can export: ``vigie_...`` metrics declared under services/vigie."""
    declared = re.compile(r"\b(\w*Counter|Gauge|Histogram|GaugeMetricFamily)\(\s*\"(vigie_\w+)\"")
    names: set[str] = set()
    for source in (ROOT / "services" / "vigie").rglob("*.py"):
        for kind, name in declared.findall(source.read_text()):
            kind = "Counter" if kind.endswith("Counter") else kind
            names.update(name + suffix for suffix in SUFFIXES[kind])
    return names


def expression_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: ``vigie_...`` words, ``up`` and ``ALERTS``, not label values
    or functions."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(re.findall(r"\bvigie_\w+|\bup\b(?!\s*\()|\bALERTS\b", without_strings))


def rules() -> list[dict]:
    """The alert rules of deploy/prometheus/rules/vigie.yml."""
    groups = yaml.safe_load((PROMETHEUS / "rules" / "vigie.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    """The PromQL of the dashboard's panels and its variables' ``label_values(...)``, ``$camera`` as ``.*``."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [re.sub(r"^label_values\((\w+),.*\)$", r"\1", variable["definition"])
              for variable in dashboard["templating"]["list"]]
    return [expr.replace("$camera", ".*") for expr in exprs]


def promtool(*args: str) -> subprocess.CompletedProcess:
    """``promtool <args>`` in deploy/prometheus; its output in ``stdout``."""
    return subprocess.run([PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)


def test_the_metrics_source_of_truth_is_sound() -> None:
    names = declared_metrics()
    assert {"vigie_consumer_lag", "vigie_end_to_end_seconds_bucket", "vigie_grabber_frames_total",
            "vigie_station_false_alarm_flagged", "vigie_evidence_store_free_bytes"} <= names
    assert expression_metrics('rate(vigie_errors_total{kind="vigie_x"}[5m]) / up') == {"vigie_errors_total", "up"}


def test_every_rule_names_existing_metrics_and_says_what_to_do() -> None:
    known = declared_metrics() | PROMETHEUS_OWN
    for rule in rules():
        assert expression_metrics(rule["expr"]) and expression_metrics(rule["expr"]) <= known, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80, rule["alert"]
    alerts = {rule["alert"] for rule in rules()}
    assert {"VigieServiceDown", "VigieCameraDown", "VigieCameraUnauthorised", "VigieCameraNoFrames", "VigieCameraRecordInvalid",
            "VigieConsoleCamerasNotStreaming", "VigieConsumerLag", "VigieAlertLatencyHigh", "VigieDeadLetters",
            "VigieRegisterBehind", "VigieRegisterDatabaseErrors", "VigieEvidenceStoreNearlyFull",
            "VigieFalseAlarmFlagged"} <= alerts


def test_the_dashboard_names_existing_metrics_and_covers_the_pipeline() -> None:
    queries = dashboard_queries()
    known = declared_metrics() | PROMETHEUS_OWN
    for expr in queries:
        assert expression_metrics(expr) and expression_metrics(expr) <= known, expr
    read = set().union(*map(expression_metrics, queries))
    assert {"vigie_grabber_frames_total", "vigie_stage_seconds_bucket", "vigie_consumer_lag",
            "vigie_end_to_end_seconds_bucket", "vigie_errors_total", "vigie_station_false_alarm_rate",
            "vigie_station_verdicts_total", "vigie_register_chain_ok", "ALERTS"} <= read
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {panel["datasource"]["uid"] for panel in json.loads(DASHBOARD.read_text())["panels"] if "datasource" in panel}
    assert uids == {datasource["datasources"][0]["uid"]}


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel's query (as the expression of a recording rule); a broken one is refused."""
    def check(queries: list[str]) -> subprocess.CompletedProcess:
        rules_file = tmp_path / "dashboard.yml"
        rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:query{n}", "expr": expr} for n, expr in enumerate(queries)]}]}))
        return promtool("check", "rules", str(rules_file))
    queries = dashboard_queries()
    done = check(queries)
    assert done.returncode == 0 and f"SUCCESS: {len(queries)} rules found" in done.stdout, done.stdout + done.stderr
    assert check(["sum by (camera) (rate(vigie_stage_seconds_count[5m])"]).returncode == 1


def test_compose_runs_prometheus_and_grafana_on_the_shipped_files() -> None:
    """Their bind mounts name files of the repository; Prometheus reads the mounted config, which loads the mounted
    rules; Grafana's provisioning finds the mounted dashboard and the compose Prometheus."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounted: dict[str, dict[str, Path]] = {}
    for name in ("prometheus", "grafana"):
        mounted[name] = {}
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
                mounted[name][target] = ROOT / source
    config = re.search(r"--config\.file=(\S+)", " ".join(services["prometheus"]["command"])).group(1)
    assert mounted["prometheus"][config] == PROMETHEUS / "prometheus.yml"
    for rule_file in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]:
        assert (mounted["prometheus"]["/etc/prometheus/rules"] / Path(rule_file).relative_to("rules")).is_file()
    for target in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]:
        host = target["static_configs"][0]["targets"][0].split(":")[0]
        assert host == target["job_name"] and host in services
    provisioning = mounted["grafana"]["/etc/grafana/provisioning"]
    path = yaml.safe_load((provisioning / "dashboards" / "vigie.yml").read_text())["providers"][0]["options"]["path"]
    assert mounted["grafana"][f"{path}/{DASHBOARD.name}"] == DASHBOARD
    url = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]["url"]
    assert url == "http://prometheus:9090"


@needs_promtool
def test_promtool_checks_the_config_and_the_rules() -> None:
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0 and "SUCCESS" in config.stdout, config.stdout + config.stderr
    checked = promtool("check", "rules", "rules/vigie.yml")
    assert checked.returncode == 0 and f"SUCCESS: {len(rules())} rules found" in checked.stdout, checked.stdout


@needs_promtool
def test_the_rules_fire_on_synthetic_series_and_stay_silent_otherwise() -> None:
    """rules/vigie_test.yml: six rules, each firing on its series (labels and rendered annotations compared)
    and silent before its ``for`` and on the healthy series beside it."""
    tests = yaml.safe_load((PROMETHEUS / "rules" / "vigie_test.yml").read_text())["tests"]
    assert len({t["alertname"] for test in tests for t in test["alert_rule_test"] if t["exp_alerts"]}) >= 3
    result = promtool("test", "rules", "rules/vigie_test.yml")
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def _api(port: int, path: str, **params: str) -> object:
    """``data`` of Prometheus's HTTP API answer to ``GET /api/v1/<path>?<params>``."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}{query}", timeout=5) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    return body["data"]


def _until(check, timeout_s: float, what: str):  # noqa: ANN001, ANN202
    """``check()``'s first truthy answer, polled every 0.5 s; fails the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if answer := check():
                return answer
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} not seen within {timeout_s} s")


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian package "
                    "prometheus, scripts/system-deps.sh)")
def test_a_real_prometheus_scrapes_a_station_and_fires_a_rule_on_it(kafka, tmp_path: Path) -> None:
    """A Prometheus of its own (1 s scrapes and evaluations, its own port and storage) scrapes a running station
    with the shipped rules and a rule on the station's incidents gauge; its API gives the station's metrics,
    all declared in the code, the rule firing, and every shipped rule loaded and healthy."""
    (tmp_path / "station.yml").write_text(yaml.safe_dump({"groups": [{"name": "station", "rules": [
        {"alert": "StationHoldsIncidents", "expr": 'vigie_station_incidents_held{job="station",state="open"} >= 0',
         "labels": {"severity": "info"}, "annotations": {"summary": "the station answers"}}]}]}))
    shutil.copy(PROMETHEUS / "rules" / "vigie.yml", tmp_path / "vigie.yml")
    port = free_port()
    with logged_in_station(kafka, log_dir=tmp_path) as (_, station_port, _cookie):
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["station.yml", "vigie.yml"],
            "scrape_configs": [{"job_name": "station", "static_configs": [{"targets": [f"127.0.0.1:{station_port}"]}]}]}))
        with open(tmp_path / "prometheus.log", "wb") as log:
            prometheus = subprocess.Popen(
                ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            firing = _until(lambda: [a for a in _api(port, "alerts")["alerts"]
                                     if a["labels"]["alertname"] == "StationHoldsIncidents" and a["state"] == "firing"],
                            30, "StationHoldsIncidents firing")
            assert firing[0]["labels"]["instance"] == f"127.0.0.1:{station_port}"
            held = _api(port, "query", query="vigie_station_incidents_held")["result"]
            assert {series["metric"]["state"] for series in held} == {"open", "closed"}
            assert _api(port, "query", query='up{job="station"}')["result"][0]["value"][1] == "1"
            for expr in dashboard_queries():  # every dashboard query parses and runs
                _api(port, "query", query=expr)
            exported = {name for name in _api(port, "label/__name__/values") if name.startswith("vigie_")}
            assert "vigie_station_incidents_held" in exported and exported <= declared_metrics()
            def health() -> dict[str, str]:
                return {rule["name"]: rule["health"] for group in _api(port, "rules")["groups"] for rule in group["rules"]}

            loaded = _until(lambda: (h := health()) and "unknown" not in h.values() and h, 15, "every rule evaluated")
            assert {rule["alert"] for rule in rules()} <= set(loaded) and set(loaded.values()) == {"ok"}, loaded
        finally:
            terminate(prometheus, 10)
        assert prometheus.returncode == 0, (tmp_path / "prometheus.log").read_text()[-2000:]
