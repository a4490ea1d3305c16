"""The detector service against the real broker: garbage on the frames topic is dead-lettered, work goes on."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from tests.stack import consume, health, produce, service
from vigie.contracts.v1 import Frame
from vigie.core.topics import Topics

pytestmark = pytest.mark.broker


def _frame(camera: str, seq: int, data: bytes) -> Frame:
    return Frame(camera_id=camera, seq=seq, capture_ns=time.time_ns(), pts=seq / 5, width=64, height=48,
                 encoding=Frame.ENCODING_JPEG, data=data, fps=5)


def test_malformed_frames_go_to_the_dead_letter_topic_and_the_detector_goes_on(kafka, tmp_path: Path) -> None:
    topics = Topics(kafka.namespace)
    jpeg = simplejpeg.encode_jpeg(np.full((48, 64, 3), 90, np.uint8), colorspace="RGB")
    good = [(b"cam", topics.frames.encode(_frame("cam", n, jpeg))) for n in range(5)]
    bad = [
        (b"cam", b"\x08\x96\x01\x12 this is not a frame"),
        (b"cam", topics.frames.encode(_frame("cam", 99, b"not a jpeg"))),
    ]
    with service(kafka, "detector", log_dir=tmp_path) as (proc, port):
        produce(kafka, topics.frames.name, good[:2] + bad + good[2:])
        letters = consume(kafka, topics.deadletter.name, lambda rs: len(rs) >= 2, timeout_s=30)
        reasons = sorted(topics.deadletter.decode(r.value).reason for r in letters)
        assert len(reasons) == 2
        assert "bad JPEG" in reasons[0] and "cam#99" in reasons[0]
        assert "not a vigie.v1.Frame" in reasons[1]
        assert all(topics.deadletter.decode(r.value).service == "detector" for r in letters)
        deadline = time.monotonic() + 20
        while health(port)["frames"] < 5:
            assert time.monotonic() < deadline, health(port)
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        # decoding is timed per frame, so per camera; the analytics run on a batch of cameras
        assert 'vigie_stage_seconds_count{camera="cam",stage="decode"} 5.0' in text
        assert 'vigie_stage_seconds_count{camera="",stage="analytics"}' in text
    assert proc.returncode == 0, (tmp_path / "detector.log").read_text()[-2000:]


@pytest.mark.parametrize("argv, says", [
    (["--device", "banana"], "--device banana: not a torch device (cpu, cuda, cuda:N, auto)"),
    (["--batch", "0"], "argument --batch: must be between 1 and 1024, got 0"),
    (["--threads", "0"], "argument --threads: must be between 1 and 64, got 0"),
])
def test_bad_detector_options_exit_2_before_any_work(namespace, argv, says) -> None:
    """Checked before the service starts: an unreachable broker is never tried, and no traceback."""
    proc = subprocess.run([sys.executable, "-m", "vigie", "--kafka", "127.0.0.1:1", "--namespace", namespace,
                           "detector", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].endswith(says), proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_object_class_stage_can_be_left_out() -> None:
    from vigie.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["detector"]).object_classes is True
    assert parser.parse_args(["detector", "--no-object-classes"]).object_classes is False
