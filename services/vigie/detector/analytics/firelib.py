"""Helpers shared by the fire and smoke analytics.

* :func:`regions` groups a boolean working-grid mask into connected regions
  (scipy, on the CPU) and :func:`frame_box` maps a working-grid box back to the
  published frame's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from vigie.detector.analytics.base import Box

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(slots=True)
class Region:
    """A connected region on the working grid: box ``(x0, y0, x1, y1)`` (exclusive ends), area in cells."""

    box: tuple[int, int, int, int]
    area: int
    label: int


def regions(group: np.ndarray, core: np.ndarray) -> tuple[list[Region], np.ndarray]:
    """Connected regions (8-connectivity) of ``group (h, w) bool``, measured on ``core``.

    ``group`` joins nearby pieces (a dilated mask); each region's box and area come
    from the ``core (h, w) bool`` cells inside it (regions without core cells are dropped).

    Returns:
        The regions and the ``(h, w) int32`` label image of ``group`` (label 0: none).
    """
    labels, n = ndimage.label(group, structure=_EIGHT)
    if n == 0:
        return [], labels
    core_labels = np.where(core, labels, 0)
    areas = np.bincount(core_labels.ravel(), minlength=n + 1)
    out = []
    for k, sl in enumerate(ndimage.find_objects(core_labels, max_label=n), start=1):
        if sl is not None:
            out.append(Region((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop), int(areas[k]), k))
    return out, labels


def frame_box(box: tuple[int, int, int, int], frame_size: tuple[int, int], work_size: tuple[int, int]) -> Box:
    """Map a working-grid box ``(x0, y0, x1, y1)`` to a :class:`Box` in pixels of a ``frame_size`` frame.

    ``work_size`` and ``frame_size`` are ``(width, height)``; the axes scale independently
    (the working grid does not keep the aspect ratio).
    """
    sx, sy = frame_size[0] / work_size[0], frame_size[1] / work_size[1]
    x0, y0 = int(np.floor(box[0] * sx)), int(np.floor(box[1] * sy))
    x1, y1 = min(frame_size[0], int(np.ceil(box[2] * sx))), min(frame_size[1], int(np.ceil(box[3] * sy)))
    return Box(x0, y0, x1 - x0, y1 - y0)


def union_box(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """Smallest ``(x0, y0, x1, y1)`` box that holds every box of ``boxes`` (non-empty)."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def chroma(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ITU-R BT.601 chroma ``(Cb - 0.5, Cr - 0.5)`` of ``rgb (N, 3, h, w)`` in [0, 1], each ``(N, 1, h, w)``."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    cb = r * -0.168736 - g * 0.331264 + b * 0.5
    cr = r * 0.5 - g * 0.418688 - b * 0.081312
    return cb, cr
