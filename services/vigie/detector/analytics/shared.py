"""Stages computed once per frame for every analytic that needs them.

Several analytics start from the same per-pixel stage: intrusion, wrong way and density
all subtract one running-average background (:class:`~vigie.detector.analytics.blobs.Foreground`)
with the same settings by default. An :class:`AnalyticsPlan` owns one :class:`SharedStages`;
each analytic it builds is offered it through :meth:`Analytic.share`, and analytics whose
background settings are equal then read one model, updated once per frame.
"""

from __future__ import annotations

import json

import torch

from vigie.detector.analytics.base import FrameBatch
from vigie.detector.analytics.blobs import Foreground, ForegroundMaps, ForegroundSettings


class SharedForeground:
    """A :class:`Foreground` read by several analytics: each frame is compared and learned once.

    :meth:`update` runs the model on the frames of ``batch`` it has not seen yet (a frame is
    known by its camera id and stream time) and answers the others from the result kept for
    each camera's latest frame.
    """

    def __init__(self, foreground: Foreground) -> None:
        self.foreground = foreground
        self._latest: dict[str, tuple[int, ForegroundMaps]] = {}  # camera -> (time_ns, its one-frame maps)

    def update(self, batch: FrameBatch) -> ForegroundMaps:
        """The :class:`ForegroundMaps` of ``batch``, as :meth:`Foreground.update` returns them.

        Raises:
            ValueError: the working size differs from the first batch's.
        """
        todo = [i for i, (cam, t) in enumerate(zip(batch.camera_ids, batch.time_ns))
                if self._latest.get(cam, (None,))[0] != t]
        if todo:
            maps = self.foreground.update(batch.select(todo))
            for k, i in enumerate(todo):
                self._latest[batch.camera_ids[i]] = (batch.time_ns[i], ForegroundMaps(
                    fg=maps.fg[k:k + 1], moving=maps.moving[k:k + 1], dt_s=[maps.dt_s[k]],
                    restarts=[maps.restarts[k]], prev=maps.prev[k:k + 1]))
            if len(todo) == len(batch):
                return maps
        parts = [self._latest[cam][1] for cam in batch.camera_ids]
        return ForegroundMaps(
            fg=torch.cat([p.fg for p in parts]), moving=torch.cat([p.moving for p in parts]),
            dt_s=[p.dt_s[0] for p in parts], restarts=[p.restarts[0] for p in parts],
            prev=torch.cat([p.prev for p in parts]))

    def forget(self, camera_id: str) -> None:
        """Drop the camera's background and its kept maps."""
        self.foreground.forget(camera_id)
        self._latest.pop(camera_id, None)


class SharedStages:
    """The shared per-frame stages of one set of analytics, on one device.

    Args:
        device: torch device of the batches.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._foregrounds: dict[str, SharedForeground] = {}

    def foreground(self, settings: ForegroundSettings) -> SharedForeground:
        """The background model with ``settings``' background fields (other fields are ignored)."""
        fields = settings.model_dump(mode="json", include=set(ForegroundSettings.model_fields))
        key = json.dumps(fields, sort_keys=True)
        if key not in self._foregrounds:
            self._foregrounds[key] = SharedForeground(ForegroundSettings(**fields).foreground(self.device))
        return self._foregrounds[key]

    @property
    def foreground_models(self) -> int:
        """Number of distinct background models in use."""
        return len(self._foregrounds)
