"""The object-class stage off the alert path: an anomaly leaves before the stage's verdict, and a rejection comes
back as a withdrawal that closes its incident (vigie.detector.verdicts); the analytics' decisions stay those they
make when they wait for the stage."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from pathlib import Path

import pytest
import simplejpeg

from tests.stack import consume, produce, service
from vigie.contracts.v1 import Frame, Incident, Verdict
from vigie.core.authorisations import authorise_cameras
from vigie.core.topics import Topics
from vigie.detector.analytics.abandoned import AbandonedObject, AbandonedObjectConfig
from vigie.detector.analytics.base import Box, ObjectBox
from vigie.detector.bench import synthetic_frames
from vigie.detector.preprocess import to_batch

FPS = 5.0
FAST = {"dwell_s": 4.0, "owner_radius_px": 20.0, "owner_absent_s": 1.0, "min_area_px": 50.0}


class Stage:
    """An object-class stage that sees a person over the whole frame (or nothing), once ``open`` is set."""

    def __init__(self, person: bool = True) -> None:
        self.person = person
        self.open = threading.Event()
        self.open.set()
        self.calls = 0

    def warm_up(self) -> None:
        pass

    def detect(self, image):  # noqa: ANN001, ANN201
        assert self.open.wait(60), "the stage was never released"
        self.calls += 1
        h, w = image.shape[:2]
        return [ObjectBox("person", 0.9, Box(0, 0, w, h))] if self.person else []


@functools.cache
def _frames(n: int = 66):
    """The third square stops at frame 20 and is raised at frame 54 (then every 5 frames)."""
    return synthetic_frames(n, (320, 180), n_movers=3, speed_px=4.0, noise=2.0, seed=3, stop_after=20)


def _run(stage: Stage | None, later: bool, withdraw: bool = False) -> list[tuple[int, object]]:
    analytic = AbandonedObject(AbandonedObjectConfig(**FAST))
    out = []
    for k, image in enumerate(_frames()):
        batch = to_batch([image], ["cam"], [k * 200_000_000], FPS)
        batch.images, batch.object_detector, batch.objects_later = [image], stage, later
        for d in analytic.process(batch):
            out.append((k, d))
            if withdraw and d.check is not None:
                analytic.withdraw("cam", d.track_id)
    return out


def test_analytic_raises_at_once_with_the_check_it_would_have_made() -> None:
    waited = _run(Stage(person=False), later=False)
    assert waited, "the stopped square should be raised"
    ahead = _run(Stage(person=False), later=True)
    assert [(k, d.track_id, d.boxes) for k, d in ahead] == [(k, d.track_id, d.boxes) for k, d in waited]
    checks = [d.check for _, d in ahead if d.check is not None]
    assert len(checks) == 1 and ahead[0][1].check is checks[0], "only the raising detection owes a verdict"
    assert not checks[0].rejects([]) and checks[0].reason == "PERSON_STILL"
    assert checks[0].rejects([ObjectBox("person", 0.9, Box(0, 0, 320, 180))])
    assert not checks[0].rejects([ObjectBox("car", 0.9, Box(0, 0, 320, 180))])


def test_a_withdrawn_track_waits_for_the_stage_as_when_it_waited_from_the_start() -> None:
    stage = Stage(person=True)
    assert _run(stage, later=False) == [], "a person over it: never raised when the stage is waited for"
    ahead = _run(Stage(person=True), later=True, withdraw=True)
    assert len(ahead) == 1 and ahead[0][1].check is not None, "raised once, then withdrawn: never again"


@pytest.mark.broker
def test_anomaly_leaves_before_the_verdict_and_the_withdrawal_closes_its_incident(kafka, tmp_path: Path,
                                                                                   monkeypatch) -> None:
    from vigie.detector import app as detector_app

    stage = Stage(person=True)
    stage.open.clear()  # the stage answers only when the test says so
    monkeypatch.setattr(detector_app, "ObjectDetector", lambda: stage)
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras(
        "cameras:\n  - id: cam\n    source: synthetic://scene\n    analytics:\n"
        f"      abandoned_object: {FAST}\n      crowd_movement: false\n".replace("'", "")))
    topics = Topics(kafka.namespace)
    settings = detector_app.DetectorSettings(kafka=kafka, device="cpu", cameras_file=str(cameras), http_port=0)
    detector = detector_app.DetectorService(settings)
    stop, failed = threading.Event(), []

    def run() -> None:
        async def go() -> None:
            halt = asyncio.Event()
            await detector.start()
            task = asyncio.create_task(detector.run(halt))
            while not stop.is_set():
                await asyncio.sleep(0.1)
            halt.set()
            await task
            await detector.stop()

        try:
            asyncio.run(go())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failed.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        with service(kafka, "correlator", log_dir=tmp_path):
            now = time.time_ns()
            produce(kafka, topics.frames.name, [(b"cam", topics.frames.encode(Frame(
                camera_id="cam", seq=k, capture_ns=now + k * 200_000_000, pts=k / FPS, width=320, height=180,
                encoding=Frame.ENCODING_JPEG, fps=FPS, data=simplejpeg.encode_jpeg(image, colorspace="RGB"))))
                for k, image in enumerate(_frames())])
            raised = consume(kafka, topics.anomalies.name, lambda rs: len(rs) >= 1)
            first = topics.anomalies.decode(raised[0].value)
            assert first.kind == "abandoned_object" and not first.withdraws
            assert stage.calls == 0, "published before the stage's verdict"
            opened = consume(kafka, topics.alerts("main").name, lambda rs: len(rs) >= 1)
            assert topics.incidents.decode(opened[0].value).state == Incident.STATE_NEW

            stage.open.set()
            records = consume(kafka, topics.anomalies.name, lambda rs: any(
                topics.anomalies.decode(r.value).withdraws for r in rs))
            withdrawals = [a for a in map(topics.anomalies.decode, (r.value for r in records)) if a.withdraws]
            assert [w.withdraws for w in withdrawals] == [first.id]
            assert withdrawals[0].withdrawal_reason == Verdict.REASON_PERSON_STILL
            alerts = consume(kafka, topics.alerts("main").name, lambda rs: any(
                topics.incidents.decode(r.value).state == Incident.STATE_CLOSED for r in rs))
            closed = [i for i in map(topics.incidents.decode, (r.value for r in alerts))
                      if i.state == Incident.STATE_CLOSED][-1]
            assert closed.id == f"inc-{first.id}"
            assert (closed.verdict.kind, closed.verdict.reason) == (Verdict.KIND_FALSE_ALARM,
                                                                    Verdict.REASON_PERSON_STILL)
            assert closed.history[-1].actor == "vigie" and "withdrawn" in closed.history[-1].detail
            deadline = time.monotonic() + 30
            while detector.frames_done < len(_frames()):
                assert time.monotonic() < deadline and not failed, failed
                time.sleep(0.2)
            later = consume(kafka, topics.anomalies.name, lambda rs: False, timeout_s=2)
            assert sum(1 for r in later if topics.anomalies.decode(r.value).withdraws) == 1
            assert detector.verdicts.withdrawn == 1
    finally:
        stop.set()
        worker.join(60)
    assert not failed, failed
