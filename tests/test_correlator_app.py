"""The faust correlator against the real broker: one event gives one incident, routed; actions apply; garbage is dead-lettered."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.stack import consume, produce, service
from vigie.contracts.v1 import Anomaly, AuditEntry, Incident, OperatorAction, RecordRef, Region
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker


def _anomaly(n: int, t0: int, camera: str = "cam-a", x: int = 400) -> Anomaly:
    return Anomaly(id=f"{camera}-{n}", camera_id=camera, kind="abandoned_object", score=0.8,
                   regions=[Region(x=x, y=340, w=44, h=44)], capture_ns=t0 + n * 200_000_000,
                   frame=RecordRef(topic="frames", partition=0, offset=n), frame_width=640, frame_height=427,
                   track_id="t1")


def test_correlator_dedupes_routes_and_applies_actions(kafka, tmp_path: Path) -> None:
    topics = Topics(kafka.namespace)
    routing = tmp_path / "routing.yaml"
    routing.write_text("routes:\n  - cameras: ['cam-*']\n    stations: [main]\n")
    t0 = time.time_ns()
    with service(kafka, "correlator", "--routing", str(routing), log_dir=tmp_path) as (proc, port):
        produce(kafka, topics.anomalies.name,
                [(b"cam-a", topics.anomalies.encode(_anomaly(n, t0))) for n in range(30)]
                + [(b"cam-a", b"\x0a\xff\xff not protobuf")]
                + [(b"cam-b", topics.anomalies.encode(_anomaly(0, t0, camera="cam-b")))])
        alerts = consume(kafka, topics.alerts("main").name,
                         lambda rs: {topics.incidents.decode(r.value).camera_id for r in rs} >= {"cam-a", "cam-b"})
        incidents = [topics.incidents.decode(r.value) for r in alerts]
        opened = {(i.camera_id, i.id) for i in incidents}
        assert opened == {("cam-a", "inc-cam-a-0"), ("cam-b", "inc-cam-b-0")}, "one incident per event"
        letters = consume(kafka, topics.deadletter.name, lambda rs: len(rs) >= 1)
        letter = topics.deadletter.decode(letters[0].value)
        assert letter.source_topic == topics.anomalies.name and "not a vigie.v1.Anomaly" in letter.reason
        assert letter.value.startswith(b"\x0a\xff\xff")

        action = OperatorAction(id="act1", incident_id="inc-cam-a-0", camera_id="cam-a",
                                kind=OperatorAction.KIND_ACKNOWLEDGE, operator="agent7", station="main")
        produce(kafka, topics.actions.name, [(b"cam-a", topics.actions.encode(action))])
        records = consume(kafka, topics.alerts("main").name, lambda rs: any(
            topics.incidents.decode(r.value).state == Incident.STATE_ACKNOWLEDGED for r in rs))
        acked = [topics.incidents.decode(r.value) for r in records
                 if topics.incidents.decode(r.value).state == Incident.STATE_ACKNOWLEDGED]
        assert acked and acked[-1].operator == "agent7" and acked[-1].id == "inc-cam-a-0"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
        assert 'vigie_errors_total{kind="dead_letter"} 1.0' in text
        assert 'vigie_stage_seconds_count{camera="cam-b",stage="correlate"} 1.0' in text  # per camera
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as response:
            assert response.status == 200  # liveness: alive (a restart would not help a recovering worker)
        for page in ("table/incidents/", "router/"):  # faust's table and router pages are off
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=5)
        assert f'vigie_records_in_total{{topic="{topics.anomalies.name}"}} 32.0' in text
    assert proc.returncode == 0, (tmp_path / "correlator.log").read_text()[-2000:]
    audit = consume(kafka, topics.audit.name, lambda rs: len(rs) >= 2, timeout_s=20)
    told = [(topics.audit.decode(r.value).kind, topics.audit.decode(r.value).service) for r in audit]
    assert told == [(AuditEntry.KIND_SERVICE_STARTED, "correlator"), (AuditEntry.KIND_SERVICE_STOPPED, "correlator")]


def test_correlator_refuses_to_start_without_its_topics(broker: str, namespace: str) -> None:
    """Faust would form its group without them and idle; the worker names them and how to create them."""
    import asyncio

    from vigie.core.errors import ConfigError
    from vigie.core.kafka import apply_topics
    from vigie.core.settings import KafkaSettings
    from vigie.correlator.app import _check_topics
    from vigie.correlator.config import CorrelatorSettings, Routing

    kafka = KafkaSettings(bootstrap=broker, namespace=namespace, request_timeout_s=1.0)
    settings = CorrelatorSettings(kafka=kafka, routing=Routing(routes=[{"cameras": ["*"], "stations": ["north"]}]))
    with pytest.raises(ConfigError, match=rf"{namespace}anomalies.*{namespace}alerts\.north.*vigie topics apply --stations north"):
        _check_topics(settings)
    asyncio.run(apply_topics(kafka, Topics(namespace).all(["north"])))
    _check_topics(settings)  # every topic now has a leader: no error


def test_healthz_is_not_ready_until_the_table_is_restored_and_says_why_recovery_fails() -> None:
    """Defect: /healthz said running while the worker could not restore its table (faust logs
    'Error in recovery ...' and retries forever), so a readiness probe passed on an idle worker."""
    import logging

    from vigie.correlator.app import create_app
    from vigie.correlator.config import CorrelatorSettings

    app = create_app(CorrelatorSettings())
    health = app.vigie_health
    try:
        assert health.state() == {"state": "starting"}  # not yet in the group, table not restored
        logging.getLogger("faust.tables.recovery").warning("Error in recovery Expecting value: line 1 column 1 (char 0)")
        state = health.state()
        assert state["state"] == "failed" and "Expecting value" in state["reason"]
    finally:
        health.close()


def test_unreadable_table_entry_degrades_the_worker_and_names_the_camera(kafka, tmp_path: Path) -> None:
    """A worker that cannot read its state must not say running: an entry of the incident table's changelog
    that is not a CameraIncidents makes /healthz say 'degraded' naming the camera (200: still ready, as every
    degraded service); the camera goes on."""
    import asyncio
    import json

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from tests.stack import health
    from vigie.core.topics import CAMERA_PARTITIONS

    changelog = f"{kafka.namespace}vigie-correlator-incidents-changelog"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(changelog, CAMERA_PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})])
        finally:
            await admin.close()

    asyncio.run(create())
    produce(kafka, changelog, [(b"cam-a", b"\x0a\xff\xff not a table entry")])
    topics = Topics(kafka.namespace)
    with service(kafka, "correlator", log_dir=tmp_path) as (_, port):
        produce(kafka, topics.anomalies.name, [(b"cam-a", topics.anomalies.encode(_anomaly(0, time.time_ns())))])
        alerts = consume(kafka, topics.incidents.name, lambda rs: len(rs) >= 1)
        assert topics.incidents.decode(alerts[0].value).id == "inc-cam-a-0"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
            body = json.loads(answer.read())
        assert body["state"] == "degraded" and "cam-a" in body["reason"], body
        assert health(port)["state"] == "degraded"


def test_correlator_waiting_for_its_broker_says_so_and_stops_cleanly(tmp_path: Path) -> None:
    """Defect: a correlator started before its broker answered nothing over HTTP while it waited (faust serves
    its pages only once it runs), so a liveness probe restarted it for waiting. It now answers /healthz 503
    'starting' naming the broker it waits for, /livez 200, and a SIGTERM stops it with exit 0."""
    import json
    import signal
    import subprocess
    import sys

    from tests.stack import free_port

    port, nothing = free_port(), free_port()
    with open(tmp_path / "correlator.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "vigie", "--kafka", f"127.0.0.1:{nothing}", "--namespace", "w.",
                                 "correlator", "--http-port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                raise AssertionError("/healthz answered 200 while no broker answers")
            except urllib.error.HTTPError as exc:
                body = json.loads(exc.read())
                assert exc.code == 503 and body["state"] == "starting", body
                assert f"127.0.0.1:{nothing}" in body["waiting_for"], body
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "correlator.log").read_text()
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as answer:
            assert answer.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_worker_stuck_on_one_record_is_failed_so_a_supervisor_restarts_it() -> None:
    """A worker whose agent waits forever on one record (a send or a table write never acknowledged) idled
    while /healthz said running: after STUCK_S seconds on one record it is 'failed' (and /livez 503), naming
    the record; a restart replays it."""
    import time as clock

    from vigie.correlator import health as health_module
    from vigie.correlator.app import create_app
    from vigie.correlator.config import CorrelatorSettings

    app = create_app(CorrelatorSettings())
    health = app.vigie_health
    try:
        health.busy["anomalies"] = (clock.monotonic() - health_module.STUCK_S - 1, "anomalies[3]@42")
        state = health.state()
        assert state["state"] == "failed" and "anomalies[3]@42" in state["reason"], state
        health.busy["anomalies"] = (clock.monotonic(), "anomalies[3]@43")
        assert health.state()["state"] != "failed"
    finally:
        health.close()
