"""The services with their broker away: at start-up, and in an outage while they run.

These tests run their own single-node broker (deploy/kafka/kafka.sh on free ports, data in a
temporary folder), which they kill with SIGKILL and start again; the shared broker of the
other tests is never touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.stack import ROOT, consume, free_port, produce, service
from tests.station_support import logged_in_station
from vigie.core.authorisations import authorise_cameras
from vigie.contracts.v1 import Incident
from vigie.core.kafka import apply_topics
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"


class PrivateBroker:
    """A single-node Kafka broker of this module only, on free ports, data under ``var``."""

    def __init__(self, var: Path) -> None:
        self.var = var
        self.port = free_port()
        self.env = {**os.environ, "VIGIE_VAR": str(var), "VIGIE_KAFKA_PORT": str(self.port),
                    "VIGIE_KAFKA_CONTROLLER_PORT": str(free_port()), "VIGIE_PYTHON": sys.executable}
        self.bootstrap = f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start it and return once it answers metadata requests; returns that instant (time.monotonic())."""
        subprocess.run([str(KAFKA_SH), "start"], env=self.env, check=True, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=180)
        return time.monotonic()

    def kill(self) -> None:
        """SIGKILL the broker (a crash: no clean shutdown), and wait until it is gone."""
        pidfile = self.var / "kafka" / "kafka.pid"
        if not pidfile.exists():
            return
        pid = int(pidfile.read_text())
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while Path(f"/proc/{pid}").exists() and "kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                errors="replace"):
            time.sleep(0.1)

    def settings(self, namespace: str) -> KafkaSettings:
        return KafkaSettings(bootstrap=self.bootstrap, namespace=namespace)


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    broker = PrivateBroker(tmp_path_factory.mktemp("kafka-var"))
    yield broker
    subprocess.run([str(KAFKA_SH), "stop"], env=broker.env, check=False, capture_output=True, timeout=60)


def _healthz(port: int) -> tuple[int, dict] | None:
    """``(HTTP status, body)`` of /healthz, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


def _until(condition, timeout_s: float, what: str, interval_s: float = 0.2):  # noqa: ANN001, ANN202
    """Poll ``condition()`` until it returns something true; returns it. Fails naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s} s"
        time.sleep(interval_s)
    return result


def _apply(kafka: KafkaSettings) -> None:
    asyncio.run(apply_topics(kafka, Topics(kafka.namespace).all(["main"])))


def _synthetic_cameras(tmp_path: Path, fps: int) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(authorise_cameras(f"cameras:\n  - id: synth\n    source: synthetic://scene\n    fps: {fps}\n"))
    return path


def test_grabber_started_before_its_broker_waits_for_it_then_publishes(private_broker, namespace: str,
                                                                       tmp_path: Path) -> None:
    """Defects: a broker unreachable at start-up made the grabber exit with a traceback after a second, and a
    broker that appeared later was never used; /healthz answered 200 while starting. Now it waits, /healthz
    answering 503 ``starting`` and saying it waits for the broker, and runs once the broker is there."""
    private_broker.kill()
    kafka = private_broker.settings(namespace)
    port = free_port()
    log_path = tmp_path / "grabber.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", namespace, "grabber",
             "--cameras", str(_synthetic_cameras(tmp_path, 5)), "--http-port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        status, body = _until(lambda: _healthz(port), 30, "grabber /healthz")
        status, body = _until(lambda: (h := _healthz(port)) and "attempt 3" in h[1].get("waiting_for", "") and h,
                              30, "third attempt to reach the broker")
        assert status == 503 and body["state"] == "starting", body
        assert f"the Kafka broker at {kafka.bootstrap}" in body["waiting_for"]
        assert proc.poll() is None
        private_broker.start()
        _apply(kafka)
        status, body = _until(lambda: (h := _healthz(port)) and h[0] == 200 and h, 40, "grabber ready")
        assert body["state"] == "running", body
        frames = consume(kafka, Topics(namespace).frames.name, lambda rs: len(rs) >= 3, timeout_s=30)
        assert len(frames) >= 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(45)
    text = log_path.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    waits = [e for e in entries if e["msg"].startswith("grabber: waiting for the Kafka broker")]
    assert waits and all(e["level"] == "warning" for e in waits)
    attempts = max(int(re.search(r"attempt (\d+)", e["msg"]).group(1)) for e in waits)
    assert len(waits) <= attempts  # at most one line per attempt (fewer: one every few seconds)
    assert len([e for e in entries if e["logger"].startswith("aiokafka")]) < 10  # the client's noise is throttled


def test_grabber_buffers_through_a_broker_outage_and_resumes(private_broker, namespace: str, tmp_path: Path) -> None:
    """Defect: with the broker away the grabber had no bound on what it held and no way back. Now each camera
    keeps its newest frames (oldest dropped first, counted), /healthz says ``degraded`` with publishing
    ``reconnecting``, the process never exits, and publishing resumes within 30 s of the broker's return;
    the frames missing from the topic are exactly those counted as dropped."""
    private_broker.start()
    kafka = private_broker.settings(namespace)
    _apply(kafka)
    topic = Topics(namespace).frames
    with service(kafka, "grabber", "--cameras", str(_synthetic_cameras(tmp_path, 10)), "--buffer-frames", "20",
                 log_dir=tmp_path) as (proc, port):
        camera = lambda: _healthz(port)[1]["cameras"]["synth"]  # noqa: E731
        _until(lambda: camera()["published"] >= 5, 30, "first frames published")
        private_broker.kill()
        down = time.monotonic()
        status, body = _until(lambda: (h := _healthz(port)) and h[1]["state"] == "degraded"
                              and h[1]["degraded"].get("publishing", {}).get("state") == "reconnecting"
                              and h[1]["cameras"]["synth"]["buffer_dropped"] > 0 and h, 30, "degraded, dropping")
        assert status == 200 and "broker does not answer" in body["publishing"]["error"], body
        time.sleep(max(0.0, 12 - (time.monotonic() - down)))
        outage = camera()
        assert proc.poll() is None and outage["buffered"] == 20
        back = private_broker.start()
        published = _until(lambda: (c := camera())["published"] > outage["published"] and time.monotonic(), 30,
                           "publishing after the broker's return")
        print(f"\nbroker down {back - down:.1f} s; first frame acknowledged {max(0.0, published - back):.1f} s "
              f"after it answered again")
        _until(lambda: _healthz(port)[1]["state"] == "running", 30, "running again")
        _until(lambda: camera()["buffered"] == 0, 30, "outbox drained")
        after = camera()
        assert after["captured"] == after["buffered"] + after["buffer_dropped"] + after["sent"] + after["rejected"]
        assert after["lost"] == 0 and after["buffer_dropped"] >= outage["buffer_dropped"] > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert (f'vigie_grabber_frames_total{{camera="synth",stage="buffer_dropped"}} '
                f'{float(after["buffer_dropped"])}') in metrics
        last = after["captured"] - 1
        records = consume(kafka, topic.name, lambda rs: any(topic.decode(r.value).seq >= last for r in rs), 30)
        seqs = {topic.decode(r.value).seq for r in records}
        assert len(records) == len(seqs)  # nothing published twice
        missing = set(range(last + 1)) - seqs
        assert len(missing) == after["buffer_dropped"]
        assert proc.poll() is None
    assert proc.returncode == 0, (tmp_path / "grabber.log").read_text()[-3000:]


def test_station_shows_an_alert_published_after_a_broker_outage(private_broker, namespace: str,
                                                                tmp_path: Path) -> None:
    """Defect: the services did not say whether they resume their streams after the broker comes back.
    The station's alerts consumer does: during the outage /healthz says ``degraded`` (broker) and an
    alert published after the broker's return shows up in /api/incidents."""
    private_broker.start()
    kafka = private_broker.settings(namespace)
    _apply(kafka)
    alerts = Topics(namespace).alerts("main")

    def alert(incident_id: str) -> None:
        incident = Incident(id=incident_id, camera_id="cam", kind="abandoned_object", revision=1,
                            first_seen_ns=time.time_ns())
        produce(kafka, alerts.name, [(alerts.key("cam"), alerts.encode(incident))])

    def listed(incident_id: str) -> bool:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/incidents", headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=5) as response:
            return any(i["id"] == incident_id for i in json.loads(response.read())["incidents"])

    with logged_in_station(kafka, log_dir=tmp_path) as (proc, port, cookie):
        alert("before")
        _until(lambda: listed("before"), 30, "alert before the outage")
        private_broker.kill()
        down = time.monotonic()
        _, body = _until(lambda: (h := _healthz(port)) and h[1]["state"] == "degraded" and h, 30, "station degraded")
        assert body["degraded"]["broker"]["error"] and proc.poll() is None
        time.sleep(max(0.0, 12 - (time.monotonic() - down)))
        back = private_broker.start()
        alert("after")
        _until(lambda: listed("after"), 30, "alert after the outage")
        print(f"\nbroker down {back - down:.1f} s; the new alert listed {time.monotonic() - back:.1f} s after it "
              f"answered again")
        _until(lambda: _healthz(port)[1]["state"] == "running", 30, "station running again")
    assert proc.returncode == 0, (tmp_path / "station.log").read_text()[-3000:]
