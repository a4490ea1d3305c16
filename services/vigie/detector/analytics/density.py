"""Density analytic: too many people in a zone (overcrowding of a platform, a gate, a square).

Method: foreground occupancy, the crowd-density estimate of Davies, Yin and Velastin,
"Crowd monitoring using image processing", Electronics & Communication Engineering
Journal 1995 (the number of people in an area is, to first order, proportional to the
foreground pixels it holds):

1. :class:`~vigie.detector.analytics.blobs.Foreground` gives each camera's foreground
   (running-average background with selective update, so that people standing still
   stay foreground for about ``hold_tau_s``; ghosts healed; cast shadows removed when
   ``shadows`` is on; opened), batched on the device.
2. A zone's *occupancy* is the fraction of its pixels (working grid) in the foreground,
   computed for every zone and frame with one batched product.
3. Optional person count (``use_classes``): the object-class stage's ``person`` boxes
   (score at least ``class_min_score``) whose footprint (bottom-centre) lies in the
   zone. The stage is called at most every ``count_every_s`` per camera and only when
   some zone's occupancy is at least ``count_min_occupancy``; while it is off, the
   occupancy is used.
4. A zone is *over* when its occupancy exceeds ``max_occupancy``, or, when counted,
   its person count exceeds ``max_persons``. A detection is raised after
   ``min_duration_s`` over (gaps shorter than ``release_s`` do not interrupt it),
   keeps one ``track_id`` (``"<camera>/density/<n>"``) per episode and zone, and emits
   on the frame it is raised, then every ``repeat_s``.

Frame score (``last_scores``): the largest over zones of ``min(1, occupancy / max_occupancy)``
(or ``min(1, persons / max_persons)`` when counted). Nobody is identified: only
foreground pixels and anonymous class boxes are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field

from vigie.detector.analytics.base import Analytic, Box, Detection, FrameBatch
from vigie.detector.analytics.blobs import SharesForeground, ForegroundSettings
from vigie.detector.analytics.episodes import Episodes
from vigie.detector.analytics.zones import Zone, ZoneMasks


class DensityConfig(ForegroundSettings):
    """Settings of :class:`Density` (times in seconds, occupancy as a fraction of the zone)."""

    zones: list[Zone] = Field(default_factory=list, max_length=64, description=(
        "Zones to watch; empty means the whole frame."))
    max_occupancy: float = Field(0.35, gt=0.0, le=1.0, description=(
        "Occupancy (fraction of the zone covered by people) above which the zone is overcrowded."))
    use_classes: bool = Field(False, description=(
        "Count the object-class stage's person boxes in the zone (when the stage is on) instead of "
        "the occupancy."))
    max_persons: int = Field(20, ge=0, le=100000, description=(
        "Person count above which the zone is overcrowded (with use_classes)."))
    class_min_score: float = Field(0.4, ge=0.0, le=1.0, description="Smallest confidence of a counted person box.")
    count_every_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Seconds between person counts of one camera (the stage costs ~0.1 s per call)."))
    count_min_occupancy: float = Field(0.02, ge=0.0, le=1.0, description=(
        "Occupancy a zone must reach before the object-class stage is asked to count."))
    min_duration_s: float = Field(2.0, ge=0.0, le=3600.0, description=(
        "Seconds a zone must stay overcrowded before a detection is raised."))
    release_s: float = Field(1.0, ge=0.0, le=600.0, description=(
        "Gaps shorter than this, seconds, do not end an episode."))
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit an active episode every this many seconds; 0 emits every overcrowded frame."))


@dataclass(slots=True)
class _Count:
    time_ns: int
    persons: list[int]  # per zone


class Density(SharesForeground, Analytic):
    """Zone-density detector over batches of cameras (see the module docstring).

    Args:
        config: :class:`DensityConfig`.
        device: torch device of the batches.

    State: the background of each camera (:class:`Foreground`), episodes per camera and
    zone, and the latest person count per camera (Python).
    """

    kind = "density"
    config_model = DensityConfig

    def __init__(self, config: DensityConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = c = config or DensityConfig()
        self.device = torch.device(device)
        self._fg = c.foreground(self.device)
        self._zones = ZoneMasks(c.zones, (160, 120), self.device)
        self._episodes = Episodes("density", c.repeat_s, c.release_s, min_duration_s=c.min_duration_s)
        self._counts: dict[str, _Count] = {}
        self.last_occupancy: torch.Tensor | None = None

    def occupancy(self, fg: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``(N, Z) float32`` fraction of each zone in the foreground.

        ``fg`` is ``(N, 1, h, w) bool``, ``masks`` ``(N, Z, h, w) bool`` on the same device.
        """
        m = masks.flatten(2).float()
        covered = torch.bmm(m, fg.flatten(2).float().transpose(1, 2))[..., 0]
        return covered / m.sum(2).clamp_min(1.0)

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Update every camera of ``batch`` and return the density detections.

        Args:
            batch: frames with ``rgb (N, 3, h, w)`` and ``gray (N, 1, h, w)`` float32 in [0, 1].

        Raises:
            ValueError: the working size differs from the first batch's.

        Returns:
            Detections (kind ``"density"``), one box (the foreground in the zone, frame pixels),
            ``attributes``: ``occupancy`` (fraction), ``persons`` (count, -1 when not counted),
            ``duration_s``, ``zone`` (index in ``zones``, 0 for the whole frame). After the call
            ``last_occupancy`` holds the ``(N, Z)`` occupancies on the CPU.
        """
        c = self.config
        fg = self._fg.update(batch).fg
        masks = self._zones.for_batch(batch)
        occ = self.occupancy(fg, masks).cpu()
        self.last_occupancy = occ
        occ_rows = occ.tolist()
        scores = [0.0] * len(batch)
        out: list[Detection] = []
        fg_cpu = None
        for i, cam in enumerate(batch.camera_ids):
            now = batch.time_ns[i]
            persons = self._persons(batch, i, occ_rows[i]) if c.use_classes else None
            for z, o in enumerate(occ_rows[i]):
                if persons is not None:
                    ratio = persons[z] / c.max_persons if c.max_persons > 0 else float(persons[z] > 0) * 2.0
                    over = persons[z] > c.max_persons
                else:
                    ratio, over = o / c.max_occupancy, o > c.max_occupancy
                scores[i] = max(scores[i], min(1.0, ratio))
                emit = self._episodes.update(cam, now, over, z)
                if emit is None:
                    continue
                if fg_cpu is None:
                    fg_cpu = fg[:, 0].cpu().numpy()
                box = self._box(fg_cpu[i] & masks[i, z].cpu().numpy(), batch.frame_sizes[i])
                out.append(Detection(
                    index=i, kind=self.kind, score=min(1.0, ratio), boxes=[box],
                    track_id=emit.track_id,
                    attributes={"occupancy": o, "persons": float(persons[z]) if persons is not None else -1.0,
                                "duration_s": emit.duration_s, "zone": float(z)}))
        self.last_scores = torch.tensor(scores, dtype=torch.float32)
        return out

    def _persons(self, batch: FrameBatch, i: int, occ: list[float]) -> list[int] | None:
        """Person count per zone for frame ``i`` (the latest, refreshed when due), or None."""
        c = self.config
        cam, now = batch.camera_ids[i], batch.time_ns[i]
        last = self._counts.get(cam)
        due = last is None or now - last.time_ns >= c.count_every_s * 1e9 or now < last.time_ns
        if due and max(occ) >= c.count_min_occupancy:
            objects = batch.objects(i)
            if objects is None:
                return None
            W, H = batch.frame_sizes[i]
            masks = self._zones.get(batch.frame_sizes[i]).cpu().numpy()
            _, h, w = masks.shape
            persons = [0] * masks.shape[0]
            for o in objects:
                if o.label != "person" or o.score < c.class_min_score:
                    continue
                col = min(w - 1, max(0, int((o.box.x + o.box.w / 2) * w / W)))
                row = min(h - 1, max(0, int((o.box.y + o.box.h - 0.5) * h / H)))
                for z in np.flatnonzero(masks[:, row, col]):
                    persons[z] += 1
            last = self._counts[cam] = _Count(now, persons)
        elif due:  # nothing in the zones: nobody to count
            last = self._counts[cam] = _Count(now, [0] * len(occ))
        return last.persons

    def _box(self, mask: np.ndarray, frame_size: tuple[int, int]) -> Box:
        """Bounding box of ``mask (h, w) bool`` in frame pixels (the whole frame when empty)."""
        h, w = mask.shape
        W, H = frame_size
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size == 0:
            return Box(0, 0, W, H)
        x0, y0 = cols[0] * W // w, rows[0] * H // h
        x1, y1 = -(-(cols[-1] + 1) * W // w), -(-(rows[-1] + 1) * H // h)
        return Box(int(x0), int(y0), int(x1 - x0), int(y1 - y0))

    def forget(self, camera_id: str) -> None:
        """Drop the camera's background, episodes and count (episode numbers keep counting)."""
        self._fg.forget(camera_id)
        self._counts.pop(camera_id, None)
        self._episodes.forget(camera_id)
