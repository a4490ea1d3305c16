"""An analytic that raises on one frame: the frame is dead-lettered, its camera and the others go on.

The failing analytic is a real plugin (tests/support/faulty_analytic.py) registered the way a
site registers its own analytics, ``VIGIE_ANALYTICS_PLUGINS``; frames are real JPEGs on the
real broker.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from tests.stack import consume, health, produce, service
from tests.support.faulty_analytic import Faulty
from vigie.core.authorisations import authorise_cameras
from vigie.contracts.v1 import Frame
from vigie.core.topics import Topics
from vigie.detector.analytics.registry import PLUGINS, PLUGINS_ENV
from vigie.detector.plan import AnalyticsPlan, Failure
from vigie.detector.preprocess import to_batch

FAULTY = "tests.support.faulty_analytic:Faulty"
CAMERAS = ("good-a", "bad", "good-b")
CAMERAS_YAML = authorise_cameras("""cameras:
  - id: good-a
    source: synthetic://scene
    analytics: {faulty: {}}
  - id: bad
    source: synthetic://scene
    analytics: {faulty: {fail_at_s: [1.0]}}
  - id: good-b
    source: synthetic://scene
    analytics: {faulty: {}}
""")


def _frames(topics: Topics, seqs: range) -> list[tuple[bytes, bytes]]:
    """Frames of every camera of CAMERAS at 5 fps (PTS seq / 5 s), keyed by camera id, interleaved."""
    jpeg = simplejpeg.encode_jpeg(np.full((48, 64, 3), 90, np.uint8), colorspace="RGB")
    return [(cam.encode(), topics.frames.encode(Frame(
        camera_id=cam, seq=seq, capture_ns=time.time_ns(), pts=seq / 5, width=64, height=48,
        encoding=Frame.ENCODING_JPEG, data=jpeg, fps=5))) for seq in seqs for cam in CAMERAS]


def test_a_failing_analytic_is_isolated_to_its_frame_in_the_plan(monkeypatch) -> None:
    """Defect: an exception inside one analytic on one frame stopped the whole detector. The plan
    now retries the analytic frame by frame, reports the failing frame and resets only that camera."""
    monkeypatch.setitem(PLUGINS, "faulty", FAULTY)
    plan = AnalyticsPlan({"good-a": {"faulty": {}}, "bad": {"faulty": {"fail_at_s": [1.0]}},
                          "good-b": {"faulty": {}}}, ["abandoned_object"], "cpu")
    faulty = plan.instances_for("bad")["faulty"]
    assert isinstance(faulty, Faulty) and faulty is not plan.instances_for("good-a")["faulty"]
    grey = [np.full((48, 64, 3), 90, np.uint8)] * 3

    def batch(t_s: float):
        return to_batch(grey, list(CAMERAS), [int(t_s * 1e9)] * 3, [5.0] * 3, (32, 24), "cpu")

    assert len(plan.process(batch(0.8), [])) == 3
    failures: list[Failure] = []
    found = plan.process(batch(1.0), failures)
    assert sorted((d.index, d.kind) for d in found) == [(0, "faulty"), (2, "faulty")]
    assert [(f.index, f.kind, f.camera_id) for f in failures] == [(1, "faulty", "bad")]
    assert failures[0].reason == "analytic faulty failed on camera bad: RuntimeError: injected fault on bad at 1.000 s"
    assert "bad" not in faulty.seen  # its state was dropped: it starts again cold
    assert len(plan.process(batch(1.2), [])) == 3 and faulty.seen["bad"] == 1
    with pytest.raises(RuntimeError, match="injected fault"):  # without a failures list, nothing is hidden
        plan.process(batch(1.0))


@pytest.mark.broker
def test_a_failing_analytic_dead_letters_its_frame_and_a_restart_does_not_crash_loop(
        kafka, tmp_path: Path, monkeypatch) -> None:
    """Defect: an exception inside one analytic on one frame stopped the detector and, the frame never
    being committed, it crash-looped on restart. Now the frame goes to the dead-letter topic with the
    analytic's kind and the reason, the other cameras' anomalies (and the failing camera's next ones)
    arrive, the offset is committed, and a restarted detector goes on without meeting the frame again."""
    monkeypatch.setenv(PLUGINS_ENV, f"faulty={FAULTY}")
    topics = Topics(kafka.namespace)
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(CAMERAS_YAML)
    args = ("--cameras", str(cameras), "--no-object-classes")

    def faulty_anomalies(n: int) -> list:
        records = consume(kafka, topics.anomalies.name, lambda rs: len(rs) >= n, timeout_s=40)
        return [a for a in map(topics.anomalies.decode, (r.value for r in records)) if a.kind == "faulty"]

    with service(kafka, "detector", *args, log_dir=tmp_path) as (proc, port):
        produce(kafka, topics.frames.name, _frames(topics, range(10)))  # bad fails at seq 5 (PTS 1.0 s)
        letters = consume(kafka, topics.deadletter.name, lambda rs: len(rs) >= 1, timeout_s=40)
        anomalies = faulty_anomalies(29)
        deadline = time.monotonic() + 20
        while health(port)["frames"] < 30:
            assert time.monotonic() < deadline, health(port)
            time.sleep(0.2)
        state = health(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
    assert proc.returncode == 0, (tmp_path / "detector.log").read_text()[-3000:]
    assert len(letters) == 1
    letter = topics.deadletter.decode(letters[0].value)
    assert letter.service == "detector" and letter.source_topic == topics.frames.name and letter.key == b"bad"
    assert letter.reason == ("analytic faulty failed on camera bad: RuntimeError: injected fault on bad at 1.000 s "
                             "(frame bad#5)")
    assert topics.frames.decode(letter.value).seq == 5
    per_camera = {cam: sorted(a.capture_ns for a in anomalies if a.camera_id == cam) for cam in CAMERAS}
    assert [len(per_camera[c]) for c in CAMERAS] == [10, 9, 10]
    seen = {a.camera_id: a.attributes["seen"] for a in anomalies if a.capture_ns == per_camera[a.camera_id][-1]}
    assert seen == {"good-a": 10.0, "bad": 4.0, "good-b": 10.0}  # bad started again cold after seq 5
    assert state["state"] == "running" and state["cameras"]["bad"]["frames"] == 4
    assert 'vigie_errors_total{kind="analytic_faulty"} 1.0' in metrics

    restarted = tmp_path / "restarted"
    restarted.mkdir()
    with service(kafka, "detector", *args, log_dir=restarted) as (proc, port):
        produce(kafka, topics.frames.name, _frames(topics, range(10, 15)))
        anomalies = faulty_anomalies(29 + 15)
        deadline = time.monotonic() + 20
        while health(port)["frames"] < 15:
            assert time.monotonic() < deadline, health(port)
            time.sleep(0.2)
        time.sleep(1.0)
        again = health(port)
    assert proc.returncode == 0, (restarted / "detector.log").read_text()[-3000:]
    assert again["state"] == "running" and again["frames"] == 15  # the 30 committed frames were not replayed
    assert len(consume(kafka, topics.deadletter.name, lambda rs: False, timeout_s=2)) == 1
    assert len(anomalies) == 29 + 15
