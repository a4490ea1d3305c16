"""Play a clip through the service's own code and record what each analytic says.

Path of a frame, as in production: the grabber's :class:`~vigie.grabber.frames.CameraPipeline`
(decode, sample by PTS to the camera's fps, resize to its width, privacy masks, JPEG;
``as_fast_as_possible``), the detector's JPEG decode (simplejpeg), then
:func:`~vigie.detector.preprocess.to_batch` and an
:class:`~vigie.detector.plan.AnalyticsPlan`, one frame per batch (the detector's
batches hold each camera at most once). No broker is involved.

Warm-up clips (normal footage of the same camera) are played first under the same
camera id, in order, looped until they add up to 1.1 x ``warmup_min_s`` seconds (by default
the longest ``warmup_s`` of the analytics, so baselines start where a deployed
camera's would); consecutive clips are separated by a 5 s gap on the stream clock,
which the analytics see as a stream restart. Times are then kept increasing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import simplejpeg
import torch

from vigie.core.cameras import CameraConfig, load_cameras
from vigie.core.options import resolve_device
from vigie.core.errors import ConfigError
from vigie.detector.analytics.base import Analytic, Box
from vigie.detector.objects import ObjectDetector
from vigie.detector.analytics.registry import NEEDS_SETTINGS, PLUGINS, config_model
from vigie.detector.plan import AnalyticsPlan, analytics_problems
from vigie.detector.preprocess import to_batch
from vigie.evaluate import groundtruth
from vigie.evaluate.transforms import Transform
from vigie.grabber.errors import SourceError
from vigie.grabber.frames import CameraPipeline
from vigie.grabber.sources import image_sequence

log = logging.getLogger("vigie.evaluate")

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".gif", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
STILLS_FOLDERS = groundtruth.STILLS_FOLDERS
GAP_S = 5.0  # stream-clock gap between consecutive clips (a restart for the analytics)
CAMERA_ID = "eval"


@dataclass(frozen=True, slots=True)
class Clip:
    """A playable source: a video file, or a folder of numbered stills played at ``stills_fps``."""

    source: Path
    stills_fps: float | None = None

    @property
    def stills(self) -> bool:
        return self.stills_fps is not None


def _is_stills(folder: Path) -> bool:
    try:
        image_sequence(CAMERA_ID, str(folder))
    except SourceError:
        return False
    return True


def _absolute(path: Path) -> Path:
    """``path`` made absolute, symbolic links kept (a clip's labels lie beside the link)."""
    return Path(os.path.abspath(path))


def resolve_clip(path: str | os.PathLike[str], stills_fps: float | None = None) -> Clip:
    """The clip at ``path``: a video file; a folder of numbered stills; or a dataset folder
    (SOURCE.md) holding ``frames/``, ``img1/`` or a single video.

    ``stills_fps``: rate of stills (default: :func:`groundtruth.stills_fps`, 10 when unknown).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: a folder with no clip, or several (their names are listed).
    """
    p = Path(path)
    if p.is_file():
        return Clip(_absolute(p))
    if not p.is_dir():
        raise FileNotFoundError(f"no such clip or folder: {path}")
    candidates = [p, *(p / sub for sub in STILLS_FOLDERS)]
    for folder in candidates:
        if folder.is_dir() and _is_stills(folder):
            return Clip(_absolute(folder), stills_fps or groundtruth.stills_fps(folder))
    videos = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
    if len(videos) == 1:
        return Clip(_absolute(videos[0]))
    inside = videos + sorted(d for d in p.iterdir() if d.is_dir() and _is_stills(d))
    if inside:
        names = ", ".join(str(c) for c in inside)
        raise ValueError(f"{path} holds several clips; evaluate one of: {names}")
    raise ValueError(f"{path} holds no clip (a video, numbered stills, frames/ or img1/)")


def available_kinds() -> list[str]:
    """Kinds of the registry whose module imports and that need no operator settings (zones, queries)."""
    kinds = []
    for kind in sorted(set(PLUGINS) - NEEDS_SETTINGS):
        try:
            config_model(kind).model_validate({})
        except Exception as exc:  # noqa: BLE001 - a plugin not there yet, or one that needs settings
            log.info("kind %s left out: %s", kind, exc)
            continue
        kinds.append(kind)
    return kinds


def camera_for(clip: Clip, fps: float | None, cameras: str | None, camera_id: str | None) -> CameraConfig:
    """The camera that plays ``clip``: from the cameras file when given (its analytics, masks,
    width; source replaced by the clip), else a default camera; ``fps`` overrides its rate.

    Raises:
        ConfigError: the file has several cameras and none is named, or the named camera is not in it.
    """
    update: dict[str, Any] = {"source": str(clip.source), "realtime": False, "loop": False}
    if clip.stills:
        update["folder_fps"] = clip.stills_fps
    if fps is not None:
        update["fps"] = fps
    if cameras is None:
        base: dict[str, Any] = {"id": camera_id or CAMERA_ID}
    else:
        listed = load_cameras(cameras, analytics_problems).cameras
        found = listed if camera_id is None and len(listed) == 1 else [c for c in listed if c.id == camera_id]
        ids = ", ".join(c.id for c in listed)
        if not found and camera_id is not None:
            raise ConfigError(f"unknown camera {camera_id!r} in {cameras} (cameras: {ids})")
        if not found:
            raise ConfigError(f"{cameras}: name the camera to evaluate with --camera (one of: {ids})")
        base = found[0].model_dump()
    try:
        return CameraConfig.model_validate({**base, **update})
    except pydantic.ValidationError as exc:
        raise ConfigError("; ".join(f"camera.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None


@dataclass(slots=True)
class Evaluation:
    """What the analytics said about the evaluated clip (warm-up excluded).

    ``times_s``: stream time (PTS, s) of each evaluated frame; ``scores``: kind -> one
    ``last_scores`` value per frame (NaN where the analytic gave none); ``detections``:
    kind -> ``(t_s, track_id, boxes, frame_size, score)``; ``configs``: kind -> settings.
    """

    path: str
    clip: Clip
    camera: CameraConfig
    kinds: list[str]
    configs: dict[str, Any]
    times_s: list[float] = field(default_factory=list)
    frame_size: tuple[int, int] | None = None
    scores: dict[str, list[float]] = field(default_factory=dict)
    detections: dict[str, list[tuple[float, str, list[tuple[int, int, int, int]], tuple[int, int], float]]] = field(
        default_factory=dict)
    warmup_paths: list[str] = field(default_factory=list)
    warmup_s: float = 0.0
    warmup_frames: int = 0
    warmup_alarms: int = 0
    errors: dict[str, str] = field(default_factory=dict)


class Player:
    """Feeds clips of one camera through the grabber pipeline and the analytics plan.

    Args:
        camera: the camera (id, fps, width, masks, analytics section).
        plan: analytics of that camera.
        device: torch device of the batches.
        work_size: the detector's working ``(width, height)``.
        transform: applied to each decoded frame before the analytics (:mod:`vigie.evaluate.transforms`).
    """

    def __init__(self, camera: CameraConfig, plan: AnalyticsPlan, device: torch.device | str = "cpu",
                 work_size: tuple[int, int] = (160, 120), object_detector: ObjectDetector | None = None,
                 transform: Transform | None = None) -> None:
        self.camera = camera
        self.transform = transform
        self.object_detector = object_detector
        self.plan = plan
        self.device = torch.device(device)
        self.work_size = work_size
        self.analytics = plan.instances_for(camera.id)
        self.errors: dict[str, str] = {}  # kind -> the exception that stopped it
        self.offset_ns = 0  # added to each clip's pts so the stream clock keeps increasing
        self._last_ns: int | None = None

    async def play(self, clip: Clip, record: Evaluation | None,
                   excerpt: tuple[float, float] | None = None) -> tuple[int, float, int]:
        """Play ``clip``; with ``record``, store its frames' scores and detections there.

        ``excerpt``: ``(start_s, end_s)`` of clip time (PTS); the frames outside are not analysed.

        Returns ``(frames, seconds of stream time, tracks started)``.

        Raises:
            SourceError: the clip cannot be opened or decoded.
        """
        update: dict[str, Any] = {"source": str(clip.source)}
        if clip.stills:
            update["folder_fps"] = clip.stills_fps
        pipeline = CameraPipeline(self.camera.model_copy(update=update), as_fast_as_possible=True)
        if self._last_ns is not None:
            self.offset_ns = self._last_ns + int(GAP_S * 1e9)
        n, first, last, tracks = 0, None, None, set()
        frames = pipeline.frames()
        try:
            async for frame in frames:
                if excerpt is not None and not excerpt[0] <= frame.pts < excerpt[1]:
                    if frame.pts >= excerpt[1]:
                        break
                    continue
                t_ns = self.offset_ns + round(frame.pts * 1e9)
                self._last_ns = t_ns if self._last_ns is None else max(self._last_ns, t_ns)
                first = frame.pts if first is None else first
                last = frame.pts
                for det in self._analyse(frame.jpeg, t_ns, frame.pts, record, n):
                    tracks.add(det)
                n += 1
        finally:
            await frames.aclose()
            pipeline.close()
        seconds = 0.0 if first is None else (last - first) + 1.0 / self.camera.fps
        return n, seconds, len(tracks)

    def _analyse(self, jpeg: bytes, t_ns: int, pts: float, record: Evaluation | None, index: int = 0) -> set[str]:
        image = simplejpeg.decode_jpeg(jpeg, colorspace="RGB")  # as the detector does
        if self.transform is not None:
            image = self.transform(image, index, pts)
        with torch.inference_mode():
            batch = to_batch([image], [self.camera.id], [t_ns], self.camera.fps, self.work_size, self.device)
            batch.images, batch.object_detector = [image], self.object_detector
            self.plan.watch_lighting(batch)
            detections = []
            # what AnalyticsPlan.process does for a batch of one camera, one analytic at a time so
            # that a failing analytic is reported and dropped instead of stopping the others
            for kind, analytic in list(self.analytics.items()):
                analytic.last_scores = None
                try:
                    detections += analytic.process(batch)
                except Exception as exc:  # noqa: BLE001 - any bug of a plugin
                    log.error("analytic %s failed at t=%.3f s and is left out: %r", kind, pts, exc)
                    self.errors[kind] = f"{type(exc).__name__}: {exc}"
                    del self.analytics[kind]
        tracks = {f"{d.kind}:{d.track_id}" for d in detections}
        if record is None:
            return tracks
        size = batch.frame_sizes[0]
        record.times_s.append(float(pts))
        record.frame_size = size
        for kind in record.kinds:
            analytic = self.analytics.get(kind)
            scores = None if analytic is None else analytic.last_scores
            value = float(scores.reshape(-1)[0]) if scores is not None and scores.numel() >= 1 else math.nan
            record.scores.setdefault(kind, []).append(value)
        for d in detections:
            boxes = [(b.x, b.y, b.w, b.h) for b in d.boxes if isinstance(b, Box)]
            record.detections.setdefault(d.kind, []).append((float(pts), d.track_id, boxes, size, float(d.score)))
        return tracks


def evaluate(path: str | os.PathLike[str], *, fps: float = 5.0, warmup: Sequence[str | os.PathLike[str]] = (),
             warmup_min_s: float | None = None, kinds: Sequence[str] | None = None, cameras: str | None = None,
             camera_id: str | None = None, device: str | torch.device = "cpu", work_size: tuple[int, int] = (160, 120),
             stills_fps: float | None = None, object_classes: bool = True,
             transform: Transform | None = None, excerpt: tuple[float, float] | None = None) -> Evaluation:
    """Play the warm-up clips, then ``path``, through the analytics (see the module docstring).

    Args:
        path: the clip (see :func:`resolve_clip`).
        fps: sampling rate, frames per second of stream time.
        warmup: clips of normal footage of the same camera, played first.
        warmup_min_s: loop the warm-up clips until they add up to this many seconds;
            None: the longest ``warmup_s`` setting of the analytics (0: play them once).
        kinds: kinds to run (default: :func:`available_kinds`); a cameras file's section
            may enable or disable more.
        cameras: cameras YAML whose camera (``camera_id``, or its only one) gives the settings.
        device: torch device ("cpu", "cuda", "cuda:N", "auto"; see :func:`vigie.core.options.resolve_device`).
        work_size: the detector's working size, pixels.
        stills_fps: rate of folders of stills (default: from the dataset, else 10).
        object_classes: offer the object-class stage to the analytics, as the detector does by default.
        transform: applied to every frame of the warm-up clips and of ``path`` as the detector
            receives it (:mod:`vigie.evaluate.transforms`, e.g. ``transforms.parse("greyscale")``).
        excerpt: ``(start_s, end_s)``: analyse only this part of ``path`` (clip time, PTS seconds).

    Raises:
        FileNotFoundError, ValueError: no clip at ``path``.
        ConfigError: unknown kind, bad settings, camera or device.
        SourceError: a clip cannot be decoded.
    """
    device = resolve_device(device)
    clip = resolve_clip(path, stills_fps)
    camera = camera_for(clip, fps, cameras, camera_id)
    plan = AnalyticsPlan({camera.id: camera.analytics}, list(kinds) if kinds is not None else available_kinds(),
                         device)
    player = Player(camera, plan, device, work_size, ObjectDetector() if object_classes else None, transform)
    record = Evaluation(path=str(path), clip=clip, camera=camera, kinds=sorted(player.analytics),
                        configs={k: getattr(a, "config", None) for k, a in player.analytics.items()})
    warm_clips = [resolve_clip(w, stills_fps) for w in warmup]
    if warmup_min_s is None:
        warmup_min_s = max((float(getattr(c, "warmup_s", 0.0) or 0.0) for c in record.configs.values()), default=0.0)

    async def run() -> None:
        passes = 0
        # 10 % more than asked: each clip's first frame follows a gap and is not learned from
        while warm_clips and (passes == 0 or record.warmup_s < 1.1 * warmup_min_s):
            played = 0.0
            for w in warm_clips:
                n, seconds, tracks = await player.play(w, None)
                record.warmup_frames += n
                record.warmup_alarms += tracks
                played += seconds
            record.warmup_s += played
            passes += 1
            if played <= 0.0:  # clips without frames: do not loop forever
                break
        record.warmup_paths = [str(w.source) for w in warm_clips]
        await player.play(clip, record, excerpt)
        record.errors = dict(player.errors)
        for kind, values in record.scores.items():
            if kind not in record.errors and values and all(math.isnan(v) for v in values):
                log.warning("analytic %s sets no last_scores: no frame-level AUC for it", kind)

    asyncio.run(run())
    return record
