"""Blob tracks through zones: the stages intrusion and wrong way share.

:class:`ZoneTracks` owns, for an analytic whose settings hold :class:`ForegroundSettings`
plus ``zones``, ``min_area_px``, ``linger_s`` and ``repeat_s``: the background model (shared
with the plan's other analytics of equal settings, see :class:`SharesForeground`), the gate
that skips frames with no foreground near a zone, the per-camera blob tracker, and the
emission schedule of raised tracks. Only positions are followed: nobody is identified.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from vigie.detector.analytics.background import dilate
from vigie.detector.analytics.base import FrameBatch
from vigie.detector.analytics.blobs import (BlobTrack, BlobTracker, ForegroundMaps, SharesForeground, ZoneGate,
                                            find_blobs)
from vigie.detector.analytics.episodes import EmissionSchedule, TrackIds
from vigie.detector.analytics.zones import ZoneMasks


class ZoneTracks(SharesForeground):
    """Mixin of the zone analytics that follow foreground blobs (see the module docstring).

    Subclasses call :meth:`_setup` from ``__init__`` and read frames with :meth:`_tracked`.
    """

    def _setup(self, config: Any, device: torch.device | str, prefix: str) -> None:
        """Build the stages for ``config`` on ``device``; track ids read ``"<camera>/<prefix>/<n>"``."""
        self.device = torch.device(device)
        self._fg = config.foreground(self.device)
        self._zones = ZoneMasks(config.zones, (160, 120), "cpu")  # footprint lookups, on the CPU
        self._gate = ZoneGate(self._zones, 9, self.device)
        self._tracker = BlobTracker(linger_s=config.linger_s)
        self._ids = TrackIds(prefix)
        self._schedule = EmissionSchedule(config.repeat_s)

    def _tracked(self, batch: FrameBatch, maps: ForegroundMaps, selected: list[int],
                 min_area_px: float) -> Iterator[tuple[int, int, list[BlobTrack], np.ndarray, np.ndarray]]:
        """Blob tracks of the ``selected`` frames of ``batch`` (indices into it), from ``maps``.

        Yields ``(k, i, tracks, labels, zone_masks)`` for each selected frame with a track:
        ``k`` its position in ``selected``, ``i`` its index in ``batch``, the tracks seen on it,
        the ``(h, w) int`` blob labels of the working grid and the ``(Z, h, w) bool`` zone masks.
        """
        if not selected:
            return
        index = torch.tensor(selected, device=self.device)
        fg = maps.fg.index_select(0, index)
        fg_cpu, mv_cpu = fg[:, 0].cpu().numpy(), maps.moving.index_select(0, index)[:, 0].cpu().numpy()
        grouped = dilate(fg, 3)[:, 0].cpu().numpy()  # pieces 1 px apart are one blob
        for k, i in enumerate(selected):
            cam, size = batch.camera_ids[i], batch.frame_sizes[i]
            blobs, labels = find_blobs(fg_cpu[k], size, min_area_px, mv_cpu[k], grouped=grouped[k])
            seen = self._tracker.update(cam, batch.time_ns[i], blobs)
            if seen:
                yield k, i, seen, labels, self._zones.get(size).numpy()

    def _emission(self, state: dict[str, Any], camera_id: str, now_ns: int) -> str | None:
        """The track id to emit with at stream time ``now_ns`` (a new one on the first emission,
        then every ``repeat_s``), or None when the raised track is not due; kept in ``state``."""
        if "track_id" not in state:
            state["track_id"] = self._ids.new(camera_id)
        elif not self._schedule.due(state["emitted"], now_ns):
            return None
        state["emitted"] = now_ns
        return state["track_id"]

    def forget(self, camera_id: str) -> None:
        """Drop the camera's background and tracks (track numbers keep counting)."""
        self._fg.forget(camera_id)
        self._tracker.forget(camera_id)
