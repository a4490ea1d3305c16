"""The detector's per-record path, shared by the live service and ``vigie replay``.

frames records → :func:`decode_records` → :func:`rounds` → :meth:`Analyser.analyse`
→ :func:`to_anomaly`. No I/O here: callers consume and produce.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import simplejpeg
import torch
from aiokafka import ConsumerRecord

import vigie
from vigie.contracts.v1 import Anomaly, Frame, RecordRef, Region
from vigie.core.errors import MalformedMessage
from vigie.core.topics import Topic
from vigie.detector.analytics.base import Detection, ObjectDetector
from vigie.detector.plan import AnalyticsPlan, Failure
from vigie.detector.preprocess import to_batch


@dataclass(slots=True)
class Item:
    """One decoded frame record: the record, its message, its image ``(H, W, 3) uint8 RGB`` and the seconds
    its parsing and decoding took."""

    record: ConsumerRecord
    frame: Frame
    image: np.ndarray
    decode_s: float = 0.0


def decode_records(topic: Topic[Frame], records: list[ConsumerRecord]) -> tuple[list[Item], list[tuple[ConsumerRecord, str]]]:
    """Parse and JPEG-decode frame records; returns the good items and ``(record, reason)`` for the bad ones."""
    items, bad = [], []
    for record in records:
        started = time.perf_counter()
        try:
            frame = topic.decode(record.value)
            if not frame.camera_id:
                raise MalformedMessage(f"frame #{frame.seq} without camera_id")
            if frame.encoding != Frame.ENCODING_JPEG:
                raise MalformedMessage(f"frame {frame.camera_id}#{frame.seq}: encoding {frame.encoding} is not JPEG")
            try:
                image = simplejpeg.decode_jpeg(frame.data, colorspace="RGB")
            except ValueError as exc:
                raise MalformedMessage(f"frame {frame.camera_id}#{frame.seq}: bad JPEG: {exc}") from exc
        except MalformedMessage as exc:
            bad.append((record, str(exc)))
            continue
        items.append(Item(record, frame, image, time.perf_counter() - started))
    return items, bad


def rounds(items: list[Item]) -> list[list[Item]]:
    """Split items into batches where each camera appears at most once, keeping each camera's order."""
    per_camera: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        per_camera[item.frame.camera_id].append(item)
    depth = max((len(v) for v in per_camera.values()), default=0)
    return [[v[k] for v in per_camera.values() if k < len(v)] for k in range(depth)]


class Analyser:
    """Runs an :class:`AnalyticsPlan` on batches of items.

    Args:
        plan: which analytics run on which camera.
        work_size: working resolution ``(width, height)`` in pixels.
        device: torch device.
        object_detector: the optional object-class stage, run on demand by the analytics.
        objects_later: the caller makes the stage's verdicts after publishing (:mod:`vigie.detector.verdicts`):
            analytics that can attach them to their detections instead of waiting for the stage.
    """

    def __init__(self, plan: AnalyticsPlan, work_size: tuple[int, int], device: torch.device,
                 object_detector: ObjectDetector | None = None, objects_later: bool = False) -> None:
        self.plan = plan
        self.work_size = work_size
        self.device = device
        self.object_detector = object_detector
        self.objects_later = objects_later

    def analyse(self, batch: list[Item], failures: list[Failure] | None = None) -> list[Detection]:
        """Detections on ``batch`` (each camera at most once); their ``index`` points into ``batch``.

        The analytics' clock is each frame's PTS (stream time), so replays match live runs.
        Without ``failures`` any exception propagates. With a list, failures are contained
        frame by frame and appended to it (their ``index`` points into ``batch``): an analytic's
        as :meth:`AnalyticsPlan.process` says, and the conversion to the working resolution's
        as kind ``"preprocess"`` (each frame is then converted alone to find the failing ones).
        """
        with torch.inference_mode():
            try:
                frames = to_batch(
                    [i.image for i in batch], [i.frame.camera_id for i in batch],
                    [round(i.frame.pts * 1e9) for i in batch], [i.frame.fps or 5.0 for i in batch],
                    self.work_size, self.device,
                )
            except Exception as exc:
                if failures is None:
                    raise
                if len(batch) == 1:
                    failures.append(Failure(0, "preprocess", batch[0].frame.camera_id, exc, stage="stage"))
                    return []
                return self._one_by_one(batch, failures)
            frames.images = [i.image for i in batch]
            frames.object_detector = self.object_detector
            frames.objects_later = self.objects_later
            return self.plan.process(frames, failures)

    def _one_by_one(self, batch: list[Item], failures: list[Failure]) -> list[Detection]:
        """:meth:`analyse` on each item alone; indices mapped back into ``batch``."""
        detections = []
        for k, item in enumerate(batch):
            failed: list[Failure] = []
            found = self.analyse([item], failed)
            for each in (*found, *failed):
                each.index = k
            detections += found
            failures += failed
        return detections


def to_anomaly(item: Item, detection: Detection) -> Anomaly:
    """The ``Anomaly`` message of ``detection`` on ``item``.

    Its id derives from the frame (camera, capture time), the kind and the track id, so the
    same run replaying a frame (its commit was lost to a rebalance) publishes the same id,
    which the correlator recognises. A replay after a crash is another detector run: its
    track ids carry another run id (:data:`vigie.detector.analytics.episodes.RUN_ID`), so a
    replayed frame's anomalies that have a track get new ids and new track ids (those without
    a track keep theirs). The correlator then merges them into the open incident of that
    camera and kind by region overlap; it never merges on the track id of another run, which
    may name another object.
    """
    frame, record = item.frame, item.record
    track = detection.track_id or "-"
    return Anomaly(
        id=f"{frame.camera_id}-{frame.capture_ns}-{detection.kind}-{track}",
        camera_id=frame.camera_id,
        kind=detection.kind,
        score=float(detection.score),
        regions=[Region(x=b.x, y=b.y, w=b.w, h=b.h) for b in detection.boxes],
        capture_ns=frame.capture_ns,
        frame=RecordRef(topic=record.topic, partition=record.partition, offset=record.offset),
        frame_width=frame.width,
        frame_height=frame.height,
        detector=f"vigie.{detection.kind}",
        detector_version=vigie.__version__,
        track_id=detection.track_id,
        attributes={k: float(v) for k, v in detection.attributes.items()},
        published_ns=time.time_ns(),
    )
