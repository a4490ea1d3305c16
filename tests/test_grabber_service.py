"""The grabber service against the real broker: a dead camera is reported and never stops the others."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.clips import data_path
from tests.stack import consume, free_port, health, service
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker


def test_missing_file_and_unreachable_rtsp_do_not_stop_the_good_camera(kafka, tmp_path: Path) -> None:
    clip = data_path("aboda_video4", "video4.avi")
    dead_port = free_port()  # nothing listens there
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "cameras:\n"
        f"  - id: gone\n    source: {tmp_path / 'no-such-clip.avi'}\n"
        f"  - id: unreachable\n    source: rtsp://127.0.0.1:{dead_port}/cam\n    timeout_s: 1\n"
        "    reconnect: {initial_s: 0.2, max_s: 1}\n"
        f"  - id: good\n    source: {clip}\n    fps: 5\n    privacy_masks: [{{name: w, polygon: [[0,0],[50,0],[50,50]]}}]\n"
    )
    topics = Topics(kafka.namespace)
    with service(kafka, "grabber", "--cameras", str(cameras), log_dir=tmp_path) as (proc, port):
        records = consume(kafka, topics.frames.name, lambda rs: len(rs) >= 15, timeout_s=30)
        frames = [topics.frames.decode(r.value) for r in records]
        assert {f.camera_id for f in frames} == {"good"}
        assert [f.seq for f in frames] == sorted(f.seq for f in frames)
        assert all(r.key == b"good" and f.privacy_masks == ["w"] for r, f in zip(records, frames))
        deadline = time.monotonic() + 15
        while (cams := health(port)["cameras"])["unreachable"]["reconnects"] < 2:
            assert time.monotonic() < deadline, cams
            time.sleep(0.3)
        assert cams["gone"]["state"] == "failed"
        assert "camera gone: file not found" in cams["gone"]["error"]
        assert cams["unreachable"]["connected"] is False and cams["unreachable"]["last_error"]
        assert cams["unreachable"]["state"] == "reconnecting"
        time.sleep(1.2)  # metrics follow the pipelines every second
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'vigie_grabber_camera_up{camera="unreachable"} 0.0' in metrics
        assert 'vigie_grabber_camera_up{camera="good"} 1.0' in metrics
        assert 'vigie_errors_total{kind="source"}' in metrics
        assert cams["good"]["state"] == "streaming" and cams["good"]["published"] >= 15
    assert proc.returncode == 0, (tmp_path / "grabber.log").read_text()[-2000:]
    log = (tmp_path / "grabber.log").read_text()
    assert "camera gone: file not found" in log


def test_bad_cameras_file_is_rejected_naming_the_key(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("cameras:\n  - id: a\n    source: synthetic://scene\n    fsp: 5\n")
    result = subprocess.run([sys.executable, "-m", "vigie", "validate", str(cameras)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "cameras.yaml:4" in result.stderr and "fsp" in result.stderr


def test_vigie_up_checks_its_files_and_port_before_starting_anything(tmp_path: Path) -> None:
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text("cameras:\n  - id: a\n    source: synthetic://scene\n    fsp: 5\n")
    result = subprocess.run([sys.executable, "-m", "vigie", "up", "--cameras", str(cameras)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "fsp" in result.stderr and "Vigie is running" not in result.stderr
    cameras.write_text("cameras:\n  - id: a\n    source: synthetic://scene\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "vigie", "up", "--cameras", str(cameras),
                                 "--station-port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"port {port}" in result.stderr and "--station-port" in result.stderr


def test_station_without_its_alert_topic_says_how_to_create_it(broker: str, namespace: str) -> None:
    result = subprocess.run([sys.executable, "-m", "vigie", "--kafka", broker, "--namespace", namespace,
                             "station", "--station", "other", "--http-port", str(free_port())],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 2
    assert "vigie topics apply --stations other" in result.stderr
