"""Detectors joining, leaving and dying in one consumer group, on the real broker, while frames flow.

Frames of twelve cameras, keyed by camera id, go to the six partitions of ``frames`` at 5 fps
per camera. Every camera runs the default analytics plus a witness analytic that raises one
anomaly per frame (tests/support/faulty_analytic.py, never failing here), so the anomalies
say which frames were analysed.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.stack import consume, health, service, wait_until
from vigie.core.authorisations import authorise_cameras
from vigie.contracts.v1 import Frame
from vigie.core.kafka import make_consumer
from vigie.core.topics import CAMERA_PARTITIONS, Topics
from vigie.detector.analytics.registry import PLUGINS_ENV
from vigie.detector.app import GROUP, DetectorService, DetectorSettings

pytestmark = pytest.mark.broker

WITNESS = "tests.support.faulty_analytic:Faulty"
CAMERAS = [f"cam-{k:02d}" for k in range(12)]


class Feeder(threading.Thread):
    """Publishes one frame per camera every 0.2 s (5 fps, PTS on each camera's own clock) until stopped."""

    def __init__(self, kafka, topics: Topics) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.kafka, self.topics = kafka, topics
        self.sent: set[tuple[str, int]] = set()  # (camera, capture_ns)
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._feed())
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def _feed(self) -> None:
        jpeg = simplejpeg.encode_jpeg(np.full((48, 64, 3), 90, np.uint8), colorspace="RGB")
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka.bootstrap, acks="all")
        await producer.start()
        try:
            seq = 0
            while not self.halt.is_set():
                sends = []
                for cam in CAMERAS:
                    frame = Frame(camera_id=cam, seq=seq, capture_ns=time.time_ns(), pts=seq / 5, width=64,
                                  height=48, encoding=Frame.ENCODING_JPEG, data=jpeg, fps=5)
                    sends.append((cam, frame.capture_ns, await producer.send(
                        self.topics.frames.name, self.topics.frames.encode(frame), key=cam.encode())))
                for cam, capture_ns, future in sends:
                    await future
                    self.sent.add((cam, capture_ns))
                seq += 1
                await asyncio.sleep(0.2)
        finally:
            await producer.stop()


def _partitions(port: int) -> set[int]:
    h = health(port)
    return set(h["partitions"]) if h else set()


async def _committed(kafka, topics: Topics) -> tuple[dict[int, int], dict[int, int]]:  # noqa: ANN001
    """(committed offsets of the detectors' group, end offsets) by partition of ``frames``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    consumer = make_consumer(kafka, group=None)
    await consumer.start()
    try:
        offsets = await admin.list_consumer_group_offsets(kafka.group(GROUP))
        tps = [TopicPartition(topics.frames.name, p) for p in range(CAMERA_PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return ({tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topics.frames.name},
                {tp.partition: end for tp, end in ends.items()})
    finally:
        await consumer.stop()
        await admin.close()


def test_detectors_survive_every_rebalance_and_every_frame_is_analysed(kafka, tmp_path: Path, monkeypatch) -> None:
    """Defect: committing offsets of a partition revoked by a rebalance raised and stopped the detector.
    Now a second detector joins then leaves (SIGTERM), a third joins and is SIGKILLed: the first one
    survives every rebalance, the cameras a detector gains are reported warming, every frame is
    analysed by some detector, and the group's committed offsets reach the end of every partition."""
    monkeypatch.setenv(PLUGINS_ENV, f"faulty={WITNESS}")
    topics = Topics(kafka.namespace)
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(authorise_cameras("cameras:\n" + "".join(f"  - id: {c}\n    source: synthetic://scene\n"
                                              f"    analytics: {{faulty: {{}}}}\n" for c in CAMERAS)))
    args = ("--cameras", str(cameras), "--no-object-classes")
    feeder = Feeder(kafka, topics)
    all_partitions = set(range(CAMERA_PARTITIONS))
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    with service(kafka, "detector", *args, log_dir=tmp_path) as (first, port_a):
        wait_until("the first detector owns every partition", lambda: _partitions(port_a) == all_partitions, 30)
        feeder.start()
        time.sleep(2)
        with service(kafka, "detector", *args, log_dir=tmp_path / "b") as (second, port_b):
            wait_until("the partitions are shared", lambda: _partitions(port_b) and _partitions(port_a)
                   and _partitions(port_a) | _partitions(port_b) == all_partitions, 40, first)
            wait_until("the second detector analyses its cameras", lambda: health(port_b)["cameras"], 20, first)
            gained = health(port_b)["cameras"]
            assert {c["state"] for c in gained.values()} == {"warming"}, gained  # they start cold
            assert {c["partition"] for c in gained.values()} <= _partitions(port_b)
            time.sleep(2)
        assert second.returncode == 0, (tmp_path / "b" / "detector.log").read_text()[-3000:]
        wait_until("the first detector takes every partition back", lambda: _partitions(port_a) == all_partitions,
               40, first)
        with service(kafka, "detector", *args, log_dir=tmp_path / "c") as (third, port_c):
            wait_until("the third detector gets partitions", lambda: _partitions(port_c), 40, first)
            time.sleep(2)
            third.send_signal(signal.SIGKILL)
            third.wait(10)
        wait_until("the first detector takes the dead one's partitions", lambda: _partitions(port_a) == all_partitions,
               60, first)
        time.sleep(2)
        feeder.halt.set()
        feeder.join(10)
        assert feeder.error is None and len(feeder.sent) > len(CAMERAS) * 20

        def analysed() -> set[tuple[str, int]]:
            records = consume(kafka, topics.anomalies.name, lambda rs: False, timeout_s=3)
            return {(a.camera_id, a.capture_ns) for a in map(topics.anomalies.decode, (r.value for r in records))
                    if a.kind == "faulty"}

        wait_until("every frame is analysed", lambda: feeder.sent <= analysed(), 60, first)

        def caught_up() -> bool:
            committed, ends = asyncio.run(_committed(kafka, topics))
            return committed == ends

        wait_until("the committed offsets reach the end of every partition", caught_up, 30, first)
        final = health(port_a)
        assert final["state"] == "running" and final["rebalances"] >= 5, final
    assert first.returncode == 0, (tmp_path / "detector.log").read_text()[-3000:]
    log = (tmp_path / "detector.log").read_text()
    assert "Traceback" not in log and "failed:" not in log, log[-3000:]


@pytest.mark.parametrize("lost", [0, 3])
def test_offsets_of_a_partition_no_longer_owned_are_never_committed(kafka, monkeypatch, lost: int) -> None:
    """Defect: committing offsets of a partition revoked by a rebalance raised (IllegalStateError) and stopped
    the detector. The detector's commit now leaves out every partition it does not own, without raising."""

    async def go() -> dict[int, int | None]:
        detector = DetectorService(DetectorSettings(kafka=kafka, object_classes=False, analytics=[], http_port=0))
        await detector.start()
        try:
            deadline = time.monotonic() + 30
            while len(detector.ownership.partitions) < CAMERA_PARTITIONS:
                assert time.monotonic() < deadline, "no assignment"
                await detector._consumer.getmany(timeout_ms=200)
            tps = {p: TopicPartition(topics.frames.name, p) for p in range(CAMERA_PARTITIONS)}
            await detector.partitions_revoked({tps[lost]})  # what the listener does at a rebalance's start
            detector._uncommitted = {tps[lost]: 5, tps[(lost + 1) % CAMERA_PARTITIONS]: 7}
            await detector.commit()
            assert detector._uncommitted == {} and detector.commits_failed == 0
            return {p: await detector._consumer.committed(tp) for p, tp in tps.items()}
        finally:
            await detector.stop()

    topics = Topics(kafka.namespace)
    committed = asyncio.run(go())
    assert committed[lost] is None and committed[(lost + 1) % CAMERA_PARTITIONS] == 7
