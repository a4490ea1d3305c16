"""Which analytics run on which camera, with which settings.

Each camera of the cameras file may carry an ``analytics`` section: analytic kind →
its settings (the fields of the kind's config model, zones included); ``false``
disables a kind the detector would run by default. Cameras absent from the file, or
without the section, get the detector's default kinds with default settings.

Cameras with the same kind and the same settings share one analytic instance (its
state is kept per camera anyway), so a batch is split by instance, not by camera,
and the detector loads only the kinds some camera enables. Analytics of different
kinds share per-frame stages with equal settings (:mod:`vigie.detector.analytics.shared`).

An analytic that raises is contained (:meth:`AnalyticsPlan.process` with a ``failures`` list):
it is run again frame by frame on the batch to find the frame(s) it fails on; each is
reported as a :class:`Failure`, the analytic's state of that camera is dropped, and the
other frames, analytics and cameras go on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
import torch

from vigie.core.authorisations import KIND_PURPOSES, kind_problem
from vigie.core.cameras import CamerasFile, check_polygon
from vigie.core.config import format_loc, validation_issues
from vigie.core.errors import ConfigError
from vigie.core.geometry import covers_any_pixel
from vigie.detector.analytics.base import Analytic, Detection, FrameBatch
from vigie.detector.analytics.registry import PLUGINS, build, config_model, plugin
from vigie.detector.analytics.shared import SharedStages
from vigie.detector.analytics.zones import Zone
from vigie.detector.lighting import LightingWatch

log = logging.getLogger(__name__)

#: Settings of one camera: kind -> config fields, or False to disable a default kind.
CameraAnalytics = Mapping[str, Mapping[str, Any] | bool]

#: Settings, in stream seconds, that say how long an analytic must watch a camera before it decides
#: as an analytic that has always watched it would: a learnt baseline (``warmup_s`` of crowd movement
#: and tamper) or a condition timed on the camera (``dwell_s`` of an abandoned object).
WARMUP_FIELDS = ("warmup_s", "dwell_s")


@dataclass(slots=True)
class Failure:
    """An analytic (or a stage before the analytics) that raised on one frame of a batch.

    Attributes:
        index: position of the frame in the batch.
        kind: the analytic's kind, or the stage's name (``"preprocess"``).
        camera_id: the frame's camera.
        error: the exception raised.
        stage: ``"analytic"``, or ``"stage"`` for a stage shared by every analytic.
    """

    index: int
    kind: str
    camera_id: str
    error: Exception
    stage: str = "analytic"

    @property
    def reason(self) -> str:
        """One line for a dead letter: the analytic's kind, the exception's type and message (its first 300
        characters, first line)."""
        message = str(self.error).strip().splitlines()[0][:300] if str(self.error).strip() else ""
        return f"{self.stage} {self.kind} failed on camera {self.camera_id}: {type(self.error).__name__}: {message}"


def _zones(value: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Zone]]:
    """Every :class:`Zone` inside a validated settings model, with its location in the settings."""
    if isinstance(value, Zone):
        yield loc, value
    elif isinstance(value, pydantic.BaseModel):
        for name, field_value in value:
            yield from _zones(field_value, (*loc, name))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _zones(item, (*loc, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _zones(item, (*loc, key))


def _zone_issues(config: pydantic.BaseModel) -> list[tuple[tuple[Any, ...], str]]:
    """Zones of ``config`` with a negative vertex or edges that cross: ``(loc, message)``."""
    issues = []
    for loc, zone in _zones(config):
        negative = [i for i, (x, y) in enumerate(zone.polygon) if x < 0 or y < 0]
        if negative:
            x, y = zone.polygon[negative[0]]
            more = f" ({len(negative)} negative vertices in all)" if len(negative) > 1 else ""
            issues.append(((*loc, "polygon", negative[0]), f"vertex [{x:g}, {y:g}] is negative{more}: zone vertices "
                           "are pixels of the published frames from their top-left corner, >= 0"))
        try:
            check_polygon(zone.polygon)
        except ValueError as exc:
            issues.append(((*loc, "polygon"), str(exc)))
    return issues


def analytics_problems(section: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """The problems of one camera's ``analytics`` section, every kind checked.

    ``section``: kind -> settings (a mapping), ``True`` (defaults) or ``False``
    (disabled). Returns ``(loc, message)`` pairs, ``loc`` starting at the kind (e.g.
    ``("abandoned_object", "dwell_s")``): unknown or unavailable kinds (disabled ones
    too: a misspelt kind disables nothing), settings the kind's model rejects, zones
    with a negative vertex or crossing edges. Settings of another type are left to
    the cameras file's own validation. Imports the plugins of the kinds named.
    """
    issues: list[tuple[tuple[Any, ...], str]] = []
    for kind, settings in section.items():
        if not isinstance(kind, str):
            continue
        if kind not in PLUGINS:
            issues.append(((kind,), f"unknown analytic kind {kind!r}; known: {sorted(PLUGINS)}"))
            continue
        if settings is False or not isinstance(settings, (Mapping, bool)):
            continue
        try:
            config = config_model(kind).model_validate({} if settings is True else dict(settings))
        except ConfigError as exc:
            issues.append(((kind,), str(exc)))
        except pydantic.ValidationError as exc:
            issues.extend(((kind, *loc), message) for loc, message in validation_issues(exc))
        else:
            issues.extend(((kind, *loc), message) for loc, message in _zone_issues(config))
    return issues


@dataclass(frozen=True, slots=True)
class Refusal:
    """An analytic kind not run on a camera: no purpose of the camera's authorisation justifies it.

    Attributes:
        camera_id: the camera.
        kind: the analytic kind.
        reason: one line naming the kind, the camera and the purposes (or the missing authorisation).
        asked: True when the camera's ``analytics`` section asks for the kind (a configuration error that
            ``vigie validate`` reports), False for a default kind the detector would otherwise run.
    """

    camera_id: str
    kind: str
    reason: str
    asked: bool


def _declared_purposes(kind: str) -> Iterable[str] | None:
    """A plugin's own ``purposes`` class attribute (built-in kinds are in KIND_PURPOSES)."""
    if kind in KIND_PURPOSES or kind not in PLUGINS:
        return None
    try:
        return getattr(plugin(kind), "purposes", None)
    except ConfigError:
        return None


def authorised_sections(cameras: CamerasFile, defaults: Iterable[str]) -> tuple[dict[str, CameraAnalytics], list[Refusal]]:
    """Each camera's ``analytics`` section with the kinds its authorisation does not justify turned off.

    A kind runs on a camera only when the camera's authorisation lists one of the purposes that can
    justify the kind (:data:`vigie.core.authorisations.KIND_PURPOSES`, or a plugin's ``purposes``); a
    camera naming no authorisation runs none. Returns the sections (camera id -> section) and the refusals.
    """
    defaults = list(defaults)
    sections: dict[str, CameraAnalytics] = {}
    refusals: list[Refusal] = []
    for camera in cameras.cameras:
        section = dict(camera.analytics or {})
        wanted = [k for k in sorted(set(defaults) | set(section)) if section.get(k, k in defaults) is not False]
        authorisation = cameras.authorisation_of(camera.id)
        for kind in wanted:
            if authorisation is None:
                reason = (f"analytic {kind} may not run on camera {camera.id}: the camera names no authorisation")
            else:
                reason = kind_problem(kind, camera.id, authorisation, _declared_purposes(kind))
            if reason:
                refusals.append(Refusal(camera.id, kind, reason, asked=kind in section))
                section[kind] = False
        sections[camera.id] = section
    return sections, refusals


class AnalyticsPlan:
    """Analytic instances and the cameras each one serves.

    Args:
        cameras: camera id → its ``analytics`` section (None: the defaults).
        defaults: kinds run on every camera unless its section says otherwise.
        device: torch device of the batches.
        unknown_cameras: whether cameras absent from ``cameras`` get the defaults (True) or nothing (False:
            the detector was given a cameras file, whose authorisations say what may run where).

    Raises:
        ConfigError: unknown kinds or bad settings, one line per problem of any camera, each
            naming ``<camera>.analytics.<kind>.<field>``.
    """

    def __init__(self, cameras: Mapping[str, CameraAnalytics | None], defaults: Iterable[str],
                 device: torch.device | str, unknown_cameras: bool = True) -> None:
        self.defaults = list(defaults)
        self.stages = SharedStages(device)
        self.lighting = LightingWatch(device=device)
        #: Called with the camera id of each lighting step (e.g. to count them in a metric); None: nothing.
        self.on_lighting_step: Callable[[str], None] | None = None
        self._instances: dict[tuple[str, str], Analytic] = {}
        self._configs: dict[tuple[str, str], pydantic.BaseModel] = {}
        self._by_camera: dict[str, list[tuple[str, str]]] = {}
        for kind in self.defaults:
            if kind not in PLUGINS:
                raise ConfigError(f"detector.analytics: unknown kind {kind!r}; known: {sorted(PLUGINS)}")
        problems = [f"{camera_id}.analytics.{format_loc(loc)}: {message}"
                    for camera_id, section in cameras.items() for loc, message in analytics_problems(section or {})]
        if problems:
            raise ConfigError("\n".join(problems))
        self._default_keys = ([self._instance(kind, {}, "defaults", device) for kind in self.defaults]
                              if unknown_cameras else [])
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
            raise ConfigError("\n".join(f"{where}.{format_loc(loc)}: {message}"
                                         for loc, message in validation_issues(exc))) from None
        key = (kind, json.dumps(config.model_dump(mode="json"), sort_keys=True))
        if key not in self._instances:
            self._instances[key] = analytic = build(kind, config, device)
            self._configs[key] = config
            analytic.share(self.stages)
        return key

    @property
    def kinds(self) -> list[str]:
        """Kinds loaded, sorted."""
        return sorted({kind for kind, _ in self._instances})

    def instances_for(self, camera_id: str) -> dict[str, Analytic]:
        """The analytic instances serving ``camera_id``, by kind (their ``last_scores`` after a batch)."""
        return {kind: self._instances[(kind, settings)] for kind, settings in self.keys_for(camera_id)}

    def zones_outside(self, camera_id: str, frame_size: tuple[int, int]) -> list[tuple[str, str]]:
        """``(kind, zone name)`` of the zones serving ``camera_id`` that cover no pixel of its frames.

        ``frame_size``: (width, height) of the published frames, pixels (zones are in
        those pixels). Such a zone never matches anything.
        """
        return [(kind, zone.name) for kind, settings in self.keys_for(camera_id)
                for _, zone in _zones(self._configs[(kind, settings)])
                if not covers_any_pixel(zone.polygon, frame_size)]

    def keys_for(self, camera_id: str) -> list[tuple[str, str]]:
        """Instance keys that serve ``camera_id``."""
        return self._by_camera.get(camera_id, self._default_keys)

    def warmup_s(self, camera_id: str) -> float:
        """Stream seconds the analytics of ``camera_id`` need before they decide as if they had always
        watched it: the largest :data:`WARMUP_FIELDS` setting among them (0 when none has one)."""
        return max((float(getattr(self._configs[key], name)) for key in self.keys_for(camera_id)
                    for name in WARMUP_FIELDS if hasattr(self._configs[key], name)), default=0.0)

    def process(self, batch: FrameBatch, failures: list[Failure] | None = None) -> list[Detection]:
        """Run every instance on the frames of the cameras it serves; detections index ``batch``.

        Without ``failures`` an exception of an analytic propagates. With a list, an analytic
        that raises on the batch is run again on each of its frames alone; each frame it still
        fails on is appended to ``failures``, and that camera's state in that analytic is
        dropped (:meth:`~vigie.detector.analytics.base.Analytic.forget`: it starts again cold).
        Detections of the frames it passes, and of every other analytic, are returned. The
        frames the failed call had already taken in are seen twice by that analytic; a repeated
        frame time reads as a stream restart to the analytics' clocks, so at worst they relearn.

        A camera whose lighting changed at once (:mod:`vigie.detector.lighting`) has its analytics
        relit (:meth:`~vigie.detector.analytics.base.Analytic.relight`) before they see the frame.
        """
        self.watch_lighting(batch)
        members: dict[tuple[str, str], list[int]] = {}
        for i, camera_id in enumerate(batch.camera_ids):
            for key in self.keys_for(camera_id):
                members.setdefault(key, []).append(i)
        detections = []
        for key, indices in members.items():
            analytic = self._instances[key]
            try:
                found = [(d, indices) for d in analytic.process(batch.select(indices))]
            except Exception as exc:
                if failures is None:
                    raise
                found = []
                if len(indices) > 1:
                    log.warning("analytic %s raised on a batch of %d frames (%s: %s): retrying frame by frame",
                                key[0], len(indices), type(exc).__name__, exc)
                for i in indices:
                    try:
                        if len(indices) == 1:
                            raise exc
                        found += [(d, [i]) for d in analytic.process(batch.select([i]))]
                    except Exception as error:  # an analytic's bug must not stop the other cameras
                        failures.append(Failure(i, key[0], batch.camera_ids[i], error))
                        analytic.forget(batch.camera_ids[i])
            for detection, where in found:
                detection.index = where[detection.index]
                detections.append(detection)
        return detections

    def watch_lighting(self, batch: FrameBatch) -> list[float | None]:
        """Sudden global lighting changes in ``batch`` (:mod:`vigie.detector.lighting`): per frame the step's
        gain, or None. The analytics of a camera with a step are relit
        (:meth:`~vigie.detector.analytics.base.Analytic.relight`) before they see the frame. Call once per
        batch, before the analytics."""
        steps = self.lighting.check(batch)
        for camera_id, gain in zip(batch.camera_ids, steps):
            if gain is not None:
                log.info("camera %s: sudden lighting change (x%.2f), its analytics relearn the scene", camera_id, gain)
                if self.on_lighting_step is not None:
                    self.on_lighting_step(camera_id)
                for key in self.keys_for(camera_id):
                    self._instances[key].relight(camera_id, gain)
        return steps

    def withdraw(self, camera_id: str, kind: str, track_id: str) -> None:
        """The object-class stage rejected the detection of ``track_id`` (``kind``, ``camera_id``) made before its
        verdict: the analytic decides about that track again (:meth:`~vigie.detector.analytics.base.Analytic.withdraw`)."""
        for key in self.keys_for(camera_id):
            if key[0] == kind:
                self._instances[key].withdraw(camera_id, track_id)

    def forget(self, camera_id: str) -> None:
        """Drop the camera's state in every instance."""
        self.lighting.forget(camera_id)
        for analytic in self._instances.values():
            analytic.forget(camera_id)
