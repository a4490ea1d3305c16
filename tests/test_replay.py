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

    early = subprocess.run([*base, "--from=-10m", "--to=-9m"], capture_output=True, text=True, timeout=120)
    assert early.returncode == 0 and json.loads(early.stdout)["frames"] == 0
    bad = subprocess.run([*base, "--from", "yesterday-ish"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr
