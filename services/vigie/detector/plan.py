"""Which analytics run on which camera, with which settings.

Each camera of the cameras file may carry an ``analytics`` section: analytic kind →
its settings (the fields of the kind's config model, zones included); ``false``
disables a kind the detector would run by default. Cameras absent from the file, or
without the section, get the detector's default kinds with default settings.

Cameras with the same kind and the same settings share one analytic instance (its
state is kept per camera anyway), so a batch is split by instance, not by camera,
and the detector loads only the kinds some camera enables. Analytics of different
kinds share per-frame stages with equal settings (:mod:`vigie.detector.analytics.shared`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic
import torch

from vigie.core.errors import ConfigError
from vigie.detector.analytics.base import Analytic, Detection, FrameBatch
from vigie.detector.analytics.registry import PLUGINS, build, config_model
from vigie.detector.analytics.shared import SharedStages

#: Settings of one camera: kind -> config fields, or False to disable a default kind.
CameraAnalytics = Mapping[str, Mapping[str, Any] | bool]


class AnalyticsPlan:
    """Analytic instances and the cameras each one serves.

    Args:
        cameras: camera id → its ``analytics`` section (None: the defaults).
        defaults: kinds run on every camera unless its section says otherwise.
        device: torch device of the batches.

    Raises:
        ConfigError: an unknown kind or a bad setting, naming ``<camera>.analytics.<kind>.<field>``.
    """

    def __init__(self, cameras: Mapping[str, CameraAnalytics | None], defaults: Iterable[str],
                 device: torch.device | str) -> None:
        self.defaults = list(defaults)
        self.stages = SharedStages(device)
        self._instances: dict[tuple[str, str], Analytic] = {}
        self._by_camera: dict[str, list[tuple[str, str]]] = {}
        for kind in self.defaults:
            if kind not in PLUGINS:
                raise ConfigError(f"detector.analytics: unknown kind {kind!r}; known: {sorted(PLUGINS)}")
        self._default_keys = [self._instance(kind, {}, "defaults", device) for kind in self.defaults]
        for camera_id, section in cameras.items():
            self._by_camera[camera_id] = self._plan(camera_id, section or {}, device)

    def _plan(self, camera_id: str, section: CameraAnalytics, device: torch.device | str) -> list[tuple[str, str]]:
        keys = []
        for kind in sorted(set(self.defaults) | set(section)):
            settings = section.get(kind, {} if kind in self.defaults else False)
            if settings is False:
                continue
            if settings is True:
                settings = {}
            keys.append(self._instance(kind, dict(settings), f"{camera_id}.analytics.{kind}", device))
        return keys

    def _instance(self, kind: str, settings: dict[str, Any], where: str, device: torch.device | str) -> tuple[str, str]:
        if kind not in PLUGINS:
            raise ConfigError(f"{where}: unknown analytic kind {kind!r}; known: {sorted(PLUGINS)}")
        try:
            config = config_model(kind).model_validate(settings)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(problems) from None
        key = (kind, json.dumps(config.model_dump(mode="json"), sort_keys=True))
        if key not in self._instances:
            self._instances[key] = analytic = build(kind, config, device)
            analytic.share(self.stages)
        return key

    @property
    def kinds(self) -> list[str]:
        """Kinds loaded, sorted."""
        return sorted({kind for kind, _ in self._instances})

    def instances_for(self, camera_id: str) -> dict[str, Analytic]:
        """The analytic instances serving ``camera_id``, by kind (their ``last_scores`` after a batch)."""
        return {kind: self._instances[(kind, settings)] for kind, settings in self.keys_for(camera_id)}

    def keys_for(self, camera_id: str) -> list[tuple[str, str]]:
        """Instance keys that serve ``camera_id``."""
        return self._by_camera.get(camera_id, self._default_keys)

    def process(self, batch: FrameBatch) -> list[Detection]:
        """Run every instance on the frames of the cameras it serves; detections index ``batch``."""
        members: dict[tuple[str, str], list[int]] = {}
        for i, camera_id in enumerate(batch.camera_ids):
            for key in self.keys_for(camera_id):
                members.setdefault(key, []).append(i)
        detections = []
        for key, indices in members.items():
            for detection in self._instances[key].process(batch.select(indices)):
                detection.index = indices[detection.index]
                detections.append(detection)
        return detections

    def forget(self, camera_id: str) -> None:
        """Drop the camera's state in every instance."""
        for analytic in self._instances.values():
            analytic.forget(camera_id)
