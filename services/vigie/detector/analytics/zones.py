"""Zones: named polygons in frame pixels where an analytic applies (forbidden area, one-way passage, ...).

A zone's polygon is given in pixels of the frames on the ``frames`` topic (after the
grabber's resize), like the regions of anomalies. :class:`ZoneMasks` rasterises the
zones of one analytic on the working grid once per frame size and serves them as
boolean tensors on the analytic's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import Field

from vigie.core.geometry import rasterize_polygons
from vigie.core.settings import StrictModel
from vigie.detector.analytics.base import FrameBatch


class Zone(StrictModel):
    """A named polygon, in pixels of the published frames."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_. -]*$",
                      description="Zone name, shown to operators.")
    polygon: list[tuple[float, float]] = Field(min_length=3, max_length=256,
                                               description="Vertices [x, y] in frame pixels, in order.")


class ZoneMasks:
    """Masks of ``zones`` on a ``work_size`` = (w, h) grid, cached per frame size.

    With no zone, one mask covering the whole frame stands for "everywhere".
    """

    def __init__(self, zones: Sequence[Zone], work_size: tuple[int, int], device: torch.device | str) -> None:
        self.zones = list(zones)
        self.names = [z.name for z in self.zones] or ["frame"]
        self.work_size = work_size
        self.device = torch.device(device)
        self._cache: dict[tuple[int, int], torch.Tensor] = {}

    def get(self, frame_size: tuple[int, int]) -> torch.Tensor:
        """``(Z, h, w) bool`` masks for frames of ``frame_size`` = (width, height) pixels."""
        masks = self._cache.get(frame_size)
        if masks is None:
            w, h = self.work_size
            if self.zones:
                grids = [rasterize_polygons([z.polygon], frame_size, (w, h)) for z in self.zones]
            else:
                grids = [np.ones((h, w), dtype=bool)]
            masks = torch.from_numpy(np.stack(grids)).to(self.device)
            self._cache[frame_size] = masks
        return masks

    def for_batch(self, batch: FrameBatch) -> torch.Tensor:
        """``(N, Z, h, w) bool``: the masks of each frame of ``batch`` (working size from the batch)."""
        h, w = batch.gray.shape[-2:]
        if (w, h) != self.work_size:
            self.work_size, self._cache = (w, h), {}
        return torch.stack([self.get(size) for size in batch.frame_sizes])
