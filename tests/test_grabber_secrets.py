"""A real grabber process against misbehaving cameras with passwords in their URLs: the states
it reports in /healthz, and the passwords nowhere in its logs, /healthz or metrics."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.stack import consume, free_port, health, service
from tests.support.mjpeg_server import MjpegServer, RtspRefuser
from vigie.core.authorisations import authorise_cameras
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker

PASSWORDS = {  # camera id -> the password in its URL
    "mjpeg-good": "Good-pw-81c2",
    "mjpeg-refused": "Wrong-pw-3f9a",
    "mjpeg-stalled": "Stall-pw-77d1",
    "rtsp-refused": "Rtsp-pw-0b4e",
    "rtsp-down": "Down-pw-e5a0",
}


def text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read().decode()


def test_camera_states_and_no_password_in_logs_healthz_or_metrics(kafka, tmp_path: Path) -> None:
    """Defects: 401/403 were reported as 'reconnecting' (now 'unauthorised', counted), a
    stalled camera must be 'reconnecting' with a clear error, and a password in a camera
    URL (rtsp://user:pass@host/...) must never appear in the logs, /healthz or the metrics."""
    script = ["good"] * 4 + ["short", "good", "garbage", "good", "truncated"] + ["good"] * 3
    good = MjpegServer(script, fps=10, then="repeat", auth=("admin", PASSWORDS["mjpeg-good"]))
    stalled = MjpegServer([], stall=True)
    refuser = RtspRefuser()
    urls = {
        "mjpeg-good": good,
        "mjpeg-refused": good,
        "mjpeg-stalled": stalled,
        "rtsp-refused": refuser,
    }
    with good, stalled, refuser:  # listening: their ports are known
        cameras = "cameras:\n"
        for camera_id, server in urls.items():
            cameras += (f"  - id: {camera_id}\n    source: {server.url('admin', PASSWORDS[camera_id])}\n"
                        "    fps: 10\n    timeout_s: 1\n    reconnect: {initial_s: 0.2, max_s: 1, unauthorised_s: 1}\n")
        cameras += (f"  - id: rtsp-down\n    source: rtsp://admin:{PASSWORDS['rtsp-down']}@127.0.0.1:{free_port()}/cam\n"
                    "    timeout_s: 1\n    reconnect: {initial_s: 0.2, max_s: 1}\n")
        path = tmp_path / "cameras.yaml"
        path.write_text(authorise_cameras(cameras))
        topic = Topics(kafka.namespace).frames
        with service(kafka, "grabber", "--cameras", str(path), log_dir=tmp_path) as (proc, port):
            records = consume(kafka, topic.name, lambda rs: len(rs) >= 12, timeout_s=30)
            deadline = time.monotonic() + 20
            while True:
                cams = health(port)["cameras"]
                if (cams["mjpeg-refused"]["auth_failures"] >= 2 and cams["rtsp-refused"]["auth_failures"] >= 2
                        and cams["mjpeg-stalled"]["stalls"] >= 2 and cams["rtsp-down"]["reconnects"] >= 2
                        and cams["mjpeg-good"]["corrupt"] >= 3):
                    break
                assert time.monotonic() < deadline, cams
                time.sleep(0.3)
            time.sleep(1.2)  # metrics follow the pipelines every second
            healthz, metrics = text(port, "/healthz"), text(port, "/metrics")
            cams = json.loads(healthz)["cameras"]
    assert proc.returncode == 0
    log = (tmp_path / "grabber.log").read_text()

    assert {topic.decode(r.value).camera_id for r in records} == {"mjpeg-good"}
    assert cams["mjpeg-good"]["state"] == "streaming" and cams["mjpeg-good"]["reconnects"] == 0
    for camera_id, code in (("mjpeg-refused", "HTTP 401"), ("rtsp-refused", "401 Unauthorized")):
        cam = cams[camera_id]
        assert cam["state"] == "unauthorised" and code in cam["error"] and cam["reconnects"] == 0, cam
        assert f'vigie_grabber_source_failures_total{{camera="{camera_id}",reason="unauthorised"}}' in metrics
    assert cams["mjpeg-stalled"]["state"] == "reconnecting"
    assert "stalled: no valid part for" in cams["mjpeg-stalled"]["error"]
    assert 'vigie_grabber_source_failures_total{camera="mjpeg-stalled",reason="stalled"}' in metrics
    assert cams["rtsp-down"]["state"] == "reconnecting" and "refused" in cams["rtsp-down"]["error"].lower()
    assert "admin:***@127.0.0.1" in log  # URLs are in the logs, redacted
    for camera_id, password in PASSWORDS.items():
        assert password not in healthz, camera_id
        assert password not in metrics, camera_id
        assert password not in log, camera_id

