"""Plugin interface shared by every analytic of the detector.

An analytic receives a :class:`FrameBatch` (frames of several cameras, already
converted to the detector's working resolution) and returns :class:`Detection`
objects in *frame pixels* of the original frames. Analytics keep their state
per camera in a :class:`CameraStateBank` so that one batch can mix cameras.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

import torch
from pydantic import BaseModel

if TYPE_CHECKING:
    from vigie.detector.analytics.shared import SharedStages


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned region in frame pixels: top-left corner ``(x, y)``, size ``(w, h)``."""

    x: int
    y: int
    w: int
    h: int

    def iou(self, other: "Box") -> float:
        """Intersection over union with ``other`` in [0, 1]."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ObjectBox:
    """An object found by the optional object-class stage: COCO label, confidence in [0, 1], box in frame pixels."""

    label: str
    score: float
    box: Box


@dataclass(frozen=True, slots=True)
class ObjectCheck:
    """The object-class verdict still owed on a detection raised before the stage ran (:attr:`FrameBatch.objects_later`).

    Attributes:
        rejects: given the objects the stage finds in the detection's frame, True when they reject it (the
            same test the analytic makes when it waits for the stage).
        why: the withdrawal in words, for the operator (e.g. "a person covers most of it").
        reason: the false-alarm reason the withdrawn incident is closed with, a ``Verdict.Reason`` name
            without its prefix (e.g. ``"PERSON_STILL"``).
    """

    rejects: Callable[[list[ObjectBox]], bool]
    why: str
    reason: str


class ObjectDetector(Protocol):
    """The object-class stage (``vigie.detector.objects``): runs on demand, one frame at a time."""

    def detect(self, image: np.ndarray) -> list[ObjectBox]:
        """Objects in ``image``, an ``(H, W, 3) uint8 RGB`` frame; boxes in its pixels."""


@dataclass(slots=True)
class FrameBatch:
    """Frames of one or more cameras, processed together.

    Attributes:
        gray: ``(N, 1, h, w) float32`` luminance in [0, 1] at the working size,
            on the detector's device.
        rgb: ``(N, 3, h, w) float32`` colour in [0, 1] at the working size, same device.
        camera_ids: ``N`` camera ids, one per frame (a camera appears at most once).
        time_ns: ``N`` frame times in ns on each camera's stream clock (its PTS): the
            analytics' clock. Dwell times and baselines count stream seconds, so a
            replay played as fast as possible gives the detections a live run gives.
        frame_sizes: ``N`` original ``(width, height)`` in pixels, to map boxes back.
        fps: ``N`` sampling rates in frames per second, to turn seconds into frames.
        images: the ``N`` decoded frames, ``(H, W, 3) uint8 RGB``, for on-demand stages, or None.
        object_detector: the object-class stage when enabled, or None; see :meth:`objects`.
        objects_later: the caller publishes detections before the object-class verdict and makes it
            afterwards: an analytic that can (see :class:`ObjectCheck`) raises without calling
            :meth:`objects` and attaches the check to its detection; the others call it as usual.
    """

    gray: torch.Tensor
    rgb: torch.Tensor
    camera_ids: list[str]
    time_ns: list[int]
    frame_sizes: list[tuple[int, int]]
    fps: list[float]
    images: list[np.ndarray] | None = None
    object_detector: ObjectDetector | None = None
    objects_later: bool = False
    _objects: dict[int, list[ObjectBox]] = field(default_factory=dict)

    def objects(self, index: int) -> list[ObjectBox] | None:
        """Objects in frame ``index`` from the object-class stage (run once per frame, on demand).

        None when the stage is off or the batch carries no images: callers then decide without it.
        """
        if self.object_detector is None or self.images is None:
            return None
        image = self.images[index]
        if id(image) not in self._objects:  # shared with sub-batches: one run per frame
            self._objects[id(image)] = self.object_detector.detect(image)
        return self._objects[id(image)]

    def __len__(self) -> int:
        return len(self.camera_ids)

    def select(self, indices: list[int]) -> "FrameBatch":
        """The sub-batch of the frames at ``indices`` (tensors index-selected on their device)."""
        if indices == list(range(len(self))):
            return self
        index = torch.tensor(indices, dtype=torch.long, device=self.gray.device)
        return FrameBatch(
            gray=self.gray.index_select(0, index), rgb=self.rgb.index_select(0, index),
            camera_ids=[self.camera_ids[i] for i in indices], time_ns=[self.time_ns[i] for i in indices],
            frame_sizes=[self.frame_sizes[i] for i in indices], fps=[self.fps[i] for i in indices],
            images=[self.images[i] for i in indices] if self.images is not None else None,
            object_detector=self.object_detector, objects_later=self.objects_later, _objects=self._objects,
        )


@dataclass(slots=True)
class Detection:
    """One anomaly found by an analytic in one frame of a batch.

    Attributes:
        index: position of the frame in the batch.
        kind: the analytic's kind, e.g. ``"abandoned_object"``.
        score: confidence in [0, 1].
        boxes: regions in frame pixels of the original frame.
        track_id: stable id of the condition across frames of one camera
            (the same abandoned object keeps its id), or ``""``.
        attributes: small free-form facts for the operator (dwell seconds, z-score).
        check: the object-class verdict still owed on it (raised before the stage ran), or None.
    """

    index: int
    kind: str
    score: float
    boxes: list[Box]
    track_id: str = ""
    attributes: dict[str, float] = field(default_factory=dict)
    check: ObjectCheck | None = None


class Analytic:
    """Base class of detector plugins.

    Subclasses set ``kind`` and ``config_model`` (their pydantic settings, unknown keys
    rejected), take ``(config, device)`` in ``__init__`` and implement :meth:`process`
    and :meth:`forget`. After each :meth:`process`, ``last_scores`` holds one score per
    frame of the batch, ``(N,) float32`` in [0, 1] on the CPU: how strongly the frame
    shows the event, whether or not a detection was raised (frame-level ROC curves in
    ``vigie evaluate`` read it).
    """

    kind: ClassVar[str] = ""
    config_model: ClassVar[type[BaseModel]]
    #: Plugins: the purposes (:class:`vigie.core.authorisations.Purpose` values) that can justify running the
    #: kind on a camera; none declared, it runs nowhere. Built-in kinds are listed in ``KIND_PURPOSES``.
    purposes: ClassVar[tuple[str, ...]] = ()
    last_scores: torch.Tensor | None = None
    #: Which sudden global lighting changes (:mod:`vigie.detector.lighting`) make the analytic drop the camera's
    #: state and start again cold (:meth:`relight`): ``"any"``, ``"brighter"`` (lights on: the over-exposed frame
    #: clips what a gain correction would need; a darker frame is mapped back) or ``""`` (none).
    relearns_on_lighting: ClassVar[str] = ""

    def process(self, batch: FrameBatch) -> list[Detection]:
        """Update per-camera state with ``batch`` and return the detections it raises."""
        raise NotImplementedError

    def forget(self, camera_id: str) -> None:
        """Drop the state of ``camera_id`` (camera removed or stream restarted)."""
        raise NotImplementedError

    def relight(self, camera_id: str, gain: float) -> None:
        """The camera's lighting changed at once by ``gain`` (brightness ratio, > 1 brighter) before the frame
        the analytic is about to process (:mod:`vigie.detector.lighting`): :meth:`forget` it when
        :attr:`relearns_on_lighting` says so, else nothing."""
        if self.relearns_on_lighting == "any" or (self.relearns_on_lighting == "brighter" and gain > 1.0):
            self.forget(camera_id)

    def withdraw(self, camera_id: str, track_id: str) -> None:
        """The object-class stage rejected the detection of ``track_id`` raised before its verdict
        (:class:`ObjectCheck`): decide about that track again, waiting for the stage from now on.
        Nothing by default (analytics that never attach a check)."""

    def share(self, stages: "SharedStages") -> None:
        """Read per-frame stages from ``stages`` (shared with the plan's other analytics) from now on.

        Called once, before the first batch; the default keeps everything private.
        """
