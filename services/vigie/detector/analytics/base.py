"""Plugin interface shared by every analytic of the detector.

An analytic receives a :class:`FrameBatch` (frames of several cameras, already
converted to the detector's working resolution) and returns :class:`Detection`
objects in *frame pixels* of the original frames. Analytics keep their state
per camera in a :class:`CameraStateBank` so that one batch can mix cameras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch


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
    """

    gray: torch.Tensor
    rgb: torch.Tensor
    camera_ids: list[str]
    time_ns: list[int]
    frame_sizes: list[tuple[int, int]]
    fps: list[float]

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
    """

    index: int
    kind: str
    score: float
    boxes: list[Box]
    track_id: str = ""
    attributes: dict[str, float] = field(default_factory=dict)


class Analytic:
    """Base class of detector plugins. Subclasses set ``kind`` and implement :meth:`process`."""

    kind: ClassVar[str] = ""

    def process(self, batch: FrameBatch) -> list[Detection]:
        """Update per-camera state with ``batch`` and return the detections it raises."""
        raise NotImplementedError

    def forget(self, camera_id: str) -> None:
        """Drop the state of ``camera_id`` (camera removed or stream restarted)."""
        raise NotImplementedError
