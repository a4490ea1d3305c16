"""`vigie replay` on frames recorded in the real broker: new rules, a sandbox topic, live work untouched."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.clips import data_path
from tests.stack import consume
from vigie.core.authorisations import authorise_cameras
from vigie.contracts.v1 import Frame
from vigie.core.cameras import CameraConfig
from vigie.core.kafka import make_producer
from vigie.core.topics import Topics
from vigie.grabber.frames import CameraPipeline

pytestmark = [pytest.mark.broker, pytest.mark.data]


async def _record(kafka, camera: CameraConfig) -> int:
    """Play a clip as fast as possible into the frames topic, as the grabber would; returns the frame count."""
    topics, producer, count = Topics(kafka.namespace), make_producer(kafka), 0
    await producer.start()
    try:
        async for f in CameraPipeline(camera, as_fast_as_possible=True).frames():
            message = Frame(camera_id=f.camera_id, seq=f.seq, capture_ns=f.capture_ns, pts=f.pts, width=f.width,
                            height=f.height, encoding=Frame.ENCODING_JPEG, data=f.jpeg, fps=camera.fps)
            await producer.send(topics.frames.name, topics.frames.encode(message), key=topics.frames.key(camera.id))
            count += 1
        await producer.flush()
    finally:
        await producer.stop()
    return count


async def _topics(kafka) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


async def _groups(kafka) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        return [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(kafka.namespace)]
    finally:
        await admin.close()


def test_replay_reruns_new_rules_into_a_sandbox_topic(kafka, tmp_path: Path) -> None:
    clip = data_path("aboda_video4", "video4.avi")
    frames = asyncio.run(_record(kafka, CameraConfig(id="aboda", source=str(clip), fps=5)))
    assert frames >= 190
    rules = tmp_path / "rules.yaml"
    rules.write_text("defaults: []\ncameras:\n  aboda:\n    abandoned_object: {dwell_s: 6}\n")
    report_path = tmp_path / "report.json"
    base = [sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace", kafka.namespace, "replay"]
    result = subprocess.run([*base, "--from=-10m", "--rules", str(rules), "--report", str(report_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["frames"] == frames and report["malformed"] == 0 and report["kinds"] == ["abandoned_object"]
    assert report["skipped_frames"] == 0 and "skipped_cameras" not in report and report["warnings"] == []
    assert "warning" not in result.stderr
    tracks = [t for t in report["tracks"] if t["kind"] == "abandoned_object"]
    assert len(tracks) == 1, report["tracks"]
    x, y, w, h = tracks[0]["regions"][0]
    assert x < 402 + 44 and x + w > 402 and y < 342 + 44 and y + h > 342, "the bag, in 640x427 pixels"
    sandbox = consume(kafka, report["sandbox_topic"], lambda rs: len(rs) >= report["anomalies"], timeout_s=20)
    assert len(sandbox) == report["anomalies"] > 0
    assert report["sandbox_topic"].startswith(f"{kafka.namespace}replay.")
    topics = Topics(kafka.namespace)
    assert consume(kafka, topics.anomalies.name, lambda rs: False, timeout_s=2) == [], "live topics untouched"
    assert asyncio.run(_groups(kafka)) == [], "no consumer group created or moved"

    # the live detector's configuration: each camera's analytics section of the cameras file
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras(f"cameras:\n  - id: aboda\n    source: {clip}\n    analytics:\n"
                       "      abandoned_object: {dwell_s: 6}\n      crowd_movement: false\n"))
    configured = subprocess.run([*base, "--from=-10m", "--cameras-file", str(cameras)], capture_output=True, text=True,
                                timeout=300)
    assert configured.returncode == 0, configured.stderr[-2000:]
    again = json.loads(configured.stdout)
    assert again["frames"] == frames and "abandoned_object" in again["kinds"]
    # dwell_s 6 from the file (the default is 10 s), crowd movement disabled for this camera
    assert [(t["kind"], t["first_capture_ns"], t["regions"]) for t in again["tracks"]] == [
        ("abandoned_object", tracks[0]["first_capture_ns"], tracks[0]["regions"])]

    def sandboxes() -> list[str]:
        return sorted(t for t in asyncio.run(_topics(kafka)) if t.startswith(f"{kafka.namespace}replay."))

    before = sandboxes()
    assert len(before) == 2
    early = subprocess.run([*base, "--from=-10m", "--to=-9m"], capture_output=True, text=True, timeout=120)
    assert early.returncode == 0 and json.loads(early.stdout)["frames"] == 0
    assert json.loads(early.stdout)["sandbox_topic"] is None
    assert "warning: no frame recorded between" in early.stderr, early.stderr
    nosuch = subprocess.run([*base, "--from=-10m", "--cameras", "nosuchcam,aboda"], capture_output=True, text=True,
                            timeout=300)
    assert nosuch.returncode == 0, nosuch.stderr[-2000:]
    assert "warning: camera(s) nosuchcam: no frame between" in nosuch.stderr
    assert "(cameras there: aboda)" in nosuch.stderr
    only_missing = subprocess.run([*base, "--from=-10m", "--cameras", "nosuchcam"], capture_output=True, text=True,
                                  timeout=300)
    skipped = json.loads(only_missing.stdout)
    assert skipped["frames"] == 0 and skipped["skipped_frames"] == frames and skipped["sandbox_topic"] is None
    assert "nosuchcam" in only_missing.stderr
    old = subprocess.run([*base, "--from=-40d", "--to=-39d"], capture_output=True, text=True, timeout=120)
    assert old.returncode == 0 and "frames older than 1 day are gone" in old.stderr, old.stderr
    assert len(sandboxes()) == 3, "a sandbox topic only for the runs with frames to replay"
    bad = subprocess.run([*base, "--from", "yesterday-ish"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr


def test_replay_checks_its_options_before_any_broker_work(namespace, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "vigie", "--kafka", "127.0.0.1:1", "--namespace", namespace, "replay", "--from=-1h"]
    for argv, says in ((["--report", "/nonexistent/dir/r.json"],
                        "argument --report: folder /nonexistent/dir does not exist"),
                       (["--device", "banana"], "--device banana: not a torch device (cpu, cuda, cuda:N, auto)"),
                       (["--cameras-file", str(tmp_path / "none.yaml")], "none.yaml")):
        run = subprocess.run([*base, *argv], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and says in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_topics_lists_and_drops_only_the_replay_sandboxes(kafka) -> None:
    from vigie.contracts.v1 import Anomaly
    from vigie.core.kafka import apply_topics, missing_topics
    from vigie.core.topics import Topic, TopicSpec

    sandbox = Topic(TopicSpec("replay.20261130T000000-abc123.anomalies", 1, 86_400_000), Anomaly, kafka.namespace)
    asyncio.run(apply_topics(kafka, [sandbox]))

    def topics(action: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vigie", "--kafka", kafka.bootstrap, "--namespace",
                               kafka.namespace, "topics", action], capture_output=True, text=True, timeout=60)

    listed = topics("sandboxes")
    assert listed.returncode == 0 and listed.stdout.split() == ["sandbox", sandbox.name]
    dropped = topics("drop-sandboxes")
    assert dropped.returncode == 0 and dropped.stdout.split() == ["deleted", sandbox.name]
    live = Topics(kafka.namespace).all(["main"])
    assert asyncio.run(missing_topics(kafka, live)) == []  # the live topics are untouched
    deadline = time.monotonic() + 30
    while asyncio.run(missing_topics(kafka, [sandbox])) != [sandbox.name]:
        assert time.monotonic() < deadline, "the sandbox topic was not deleted"
        time.sleep(0.5)
    assert topics("sandboxes").stdout == ""
