"""Abandoned-object analytic: something set down and left unattended.

Method after F. Porikli, Y. Ivanov, T. Haga, "Robust abandoned object detection
using dual foregrounds", EURASIP JASP 2008:

1. Frames are first mapped to the exposure of the camera's long-term background
   (per channel affine fit, robust to foreground: cameras re-expose when dark
   clothes fill the view), then :class:`~vigie.detector.analytics.background.DualBackground`
   (its own global gain off) gives long- and short-term foreground masks;
   *static* = long-term foreground AND NOT short-term foreground (opened), kept
   inside the ``zones`` when some are set.
2. A per-pixel evidence counter, in seconds, rises by ``dt`` while the pixel is
   static and falls by ``decay * dt`` otherwise; it is capped at
   ``dwell_s + hold_s`` so that a confirmed object survives a short occlusion.
3. Pixels whose evidence reached ``dwell_s`` are grouped into connected
   components (scipy, on the CPU, only for cameras that have such pixels);
   blobs outside ``[min_area_px, max_area_px]`` (frame pixels) are dropped.
4. A new blob whose boundary edges are in the long-term background rather than
   in the frame is a *ghost* (an object that left, e.g. someone present when the
   camera started); one that the background shifted by a pixel or two explains is
   camera drift (painted lines); one that differs from it by a weak near-uniform
   offset only is a flat surface following the exposure (a bare wall): all are
   healed into the backgrounds, not reported. Blobs keep a stable ``track_id`` across frames (matched by box IoU or
   centre inclusion; a track survives ``linger_s`` without its blob).
5. A track is raised once its owner has left: no short-term (moving) foreground
   within ``owner_radius_px`` of the blob during the last ``owner_absent_s``
   seconds (a per-pixel "recent motion" timer).
6. ... and once it is an *object*, not someone standing still (a person at a
   table, in a queue): its whole long-term foreground region must be at most
   ``max_area_px``, ``min_static_frac`` static, and lifeless, i.e. its difference
   to the short-term background no more than ``still_ratio`` times the noise
   around it (people sway and breathe below the foreground threshold; a bag does
   not), and compact (``max_elongation``: someone standing or lying still is not).
   When the object-class stage is on, a candidate mostly covered by a ``person`` box
   is not raised either; without it the analytic decides alone.
   When the caller makes that verdict after publishing (``FrameBatch.objects_later``, the
   detector service), the candidate is raised at once with an :class:`ObjectCheck` (the same
   test); a rejection comes back as :meth:`AbandonedObject.withdraw`: the track is unraised
   and from then on waits for the stage, frame by frame, as above.

Cold start (new camera, detector restart, camera gained in a rebalance, :meth:`forget`):
for ``warmup_s`` stream seconds the long-term background is bootstrapped from each
pixel's longest stable interval (Gutchess et al., ICCV 2001; see
:mod:`~vigie.detector.analytics.background`) rather than the first frame, and no evidence
accrues (:meth:`AbandonedObject.warming`): someone in view at the start leaves no ghost,
and the edge test of step 4 catches what the warm-up missed. What stays still during the
whole warm-up is scene: a bag already left when the camera starts is not reported. On
ABODA video 4 (bag set down at ~13-14.5 s), started every 0.2 s from 0 to 11 s: exactly
the bag, once; from 11.2 s on (owner at the drop point): nothing, bar 3 ghosts in 99 starts.

Emission policy: a raised track emits a :class:`Detection` on the frame it is
raised, then again every ``repeat_s`` seconds (``0``: every frame) for as long
as its blob is seen; the downstream correlator merges detections of the same
camera, kind and region. Boxes are in original frame pixels. No person is
identified or followed: only pixels that became static are analysed.

Frame score (``last_scores``): half the largest static evidence over the dwell time,
in [0, 0.5], until an object is raised; then the raised object's score, 0.6 rising
to 1 after another ``dwell_s`` unattended.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import ndimage

from vigie.detector.analytics.background import DualBackground, DualBackgroundConfig, accrue, dilate, opening
from vigie.detector.analytics.base import Analytic, Box, Detection, FrameBatch, ObjectBox, ObjectCheck
from vigie.detector.analytics.episodes import EmissionSchedule, TrackIds
from vigie.detector.analytics.regiontests import edge_energy, shifted_match, uniform_offset
from vigie.detector.analytics.zones import Zone, ZoneMasks
from vigie.detector.state import CameraStateBank, FrameClock

_EIGHT = np.ones((3, 3), dtype=bool)


class AbandonedObjectConfig(BaseModel):
    """Settings of :class:`AbandonedObject` (times in seconds, sizes in original frame pixels)."""

    model_config = ConfigDict(extra="forbid")

    dwell_s: float = Field(8.0, ge=1.0, le=600.0, description=(
        "Seconds a region must stay static (long-term but not short-term foreground) before it is a candidate."))
    decay: float = Field(1.0, ge=0.1, le=20.0, description=(
        "Evidence lost per second while a pixel is not static, relative to the rate at which it is gained."))
    hold_s: float = Field(5.0, ge=0.0, le=120.0, description=(
        "Evidence kept above dwell_s: a confirmed object survives about hold_s/decay seconds of occlusion."))
    min_area_px: float = Field(300.0, ge=1.0, le=1e7, description="Smallest object area, frame pixels squared.")
    max_area_px: float = Field(40000.0, ge=1.0, le=1e7, description="Largest object area, frame pixels squared.")
    owner_radius_px: float = Field(100.0, ge=0.0, le=4000.0, description=(
        "Moving foreground closer than this to the object, frame pixels, means it is still attended."))
    owner_absent_s: float = Field(3.0, ge=0.0, le=120.0, description=(
        "The neighbourhood must have been free of motion for this many seconds before raising."))
    owner_min_px: float = Field(150.0, ge=1.0, le=1e6, description=(
        "Moving area near the object, frame pixels squared, that counts as someone attending it."))
    ghost_ratio: float = Field(1.0, ge=0.1, le=10.0, description=(
        "A new candidate whose boundary has more than this times the edge energy in the long-term "
        "background than in the frame is a ghost (something left the scene): healed, not reported."))
    min_static_frac: float = Field(0.6, ge=0.0, le=1.0, description=(
        "Share of the long-term foreground region around a candidate that must be static before it is "
        "raised: someone standing still keeps moving parts of the body, a left object is still as a whole."))
    still_ratio: float = Field(1.5, ge=0.5, le=100.0, description=(
        "Raise only while the candidate differs from the short-term background by at most this many times "
        "the noise around it: a person standing still sways and breathes, a left object does not."))
    max_elongation: float = Field(2.2, ge=1.0, le=100.0, description=(
        "Raise only a region whose box (frame pixels) is at most this many times as tall as wide, or as wide "
        "as tall: someone standing or lying still is elongated, a bag or a case is compact."))
    jitter_px: int = Field(2, ge=0, le=8, description=(
        "A new candidate that the long-term background shifted by up to this many working pixels "
        "explains (camera drift or vibration moving high-contrast edges) is healed, not reported; 0: off."))
    flat_offset: float = Field(0.12, ge=0.0, le=1.0, description=(
        "A new candidate whose difference to the long-term background is a near-uniform offset (spread under "
        "half of it) of at most this much is a flat surface following the exposure or the codec, not an "
        "object: healed, not reported; 0: off."))
    match_iou: float = Field(0.1, ge=0.0, le=1.0, description="Box IoU that links a blob to an existing track.")
    linger_s: float = Field(5.0, ge=0.0, le=600.0, description="Seconds a track survives without its blob.")
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit a raised track every this many seconds while it is seen; 0 emits every frame."))
    long_tau_s: float = Field(120.0, ge=5.0, le=3600.0, description=(
        "Long-term background time constant, seconds (a left object fades into it after ~0.5-1.5x this)."))
    short_tau_s: float = Field(1.5, ge=0.1, le=60.0, description=(
        "Short-term background time constant, seconds (a stopped object joins it after ~1-2x this)."))
    diff_threshold: float = Field(0.06, gt=0.0, lt=1.0, description=(
        "Foreground threshold on the smoothed max-channel difference, intensity in [0, 1]."))
    open_px: int = Field(3, ge=1, le=9, description="Opening size for foreground masks, working pixels.")
    warmup_s: float = Field(4.0, ge=0.0, le=600.0, description=(
        "Cold-start warm-up, stream seconds after a camera's first frame (or a restart): the long-term background "
        "is bootstrapped from stable intervals and no evidence accrues; 0: the first frame is the background."))
    warmup_stable_s: float = Field(0.6, ge=0.2, le=600.0, description=(
        "During the warm-up, a pixel seen stable this many seconds keeps that value as its long-term background."))
    zones: list[Zone] = Field(default_factory=list, max_length=64, description=(
        "Where left objects are watched for (polygons in frame pixels): static pixels outside every "
        "zone gather no evidence; empty: the whole frame."))

    @model_validator(mode="after")
    def _check(self) -> "AbandonedObjectConfig":
        if self.max_area_px < self.min_area_px:
            raise ValueError("max_area_px must be >= min_area_px")
        if self.long_tau_s <= 2 * self.short_tau_s:
            raise ValueError("long_tau_s must be more than twice short_tau_s")
        return self


@dataclass(slots=True)
class _Blob:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), working pixels
    area: int  # working pixels
    mask: np.ndarray  # (h, w) bool, this blob's (dilated) pixels


@dataclass(slots=True)
class _Track:
    track_id: str
    box: tuple[int, int, int, int]
    first_ns: int
    last_ns: int
    raised_ns: int | None = None
    last_emit_ns: int | None = None
    lively: float | None = None  # running mean of the in/ring difference ratio (see _settled)
    wait_for_objects: bool = False  # withdrawn once (ObjectCheck): the stage is consulted before raising again


#: The withdrawal of a candidate the object-class stage sees a person over, in words.
PERSON_OVER = "the object-class stage sees a person over most of it: someone standing still, not a left object"


def person_over(b: Box, objects: list[ObjectBox]) -> bool:
    """Whether a ``person`` box of ``objects`` covers at least half of ``b`` (frame pixels)."""
    for o in objects:
        ix = min(b.x + b.w, o.box.x + o.box.w) - max(b.x, o.box.x)
        iy = min(b.y + b.h, o.box.y + o.box.h) - max(b.y, o.box.y)
        if o.label == "person" and ix > 0 and iy > 0 and ix * iy >= 0.5 * b.w * b.h:
            return True
    return False


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _inside(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether the centre of ``a`` lies in ``b``."""
    cx, cy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    return b[0] <= cx < b[2] and b[1] <= cy < b[3]


class AbandonedObject(Analytic):
    """Abandoned-object detector over batches of cameras (see the module docstring).

    Args:
        config: :class:`AbandonedObjectConfig`.
        device: torch device of the batches.

    Per-camera state: the two backgrounds, a ``(1, h, w) float32`` evidence map
    (seconds) and a ``(1, h, w) float32`` recent-motion timer (seconds), in
    :class:`~vigie.detector.state.CameraStateBank` slots; tracks in Python.
    :meth:`process` runs under ``torch.inference_mode``.
    """

    kind = "abandoned_object"
    # lights off: the exposure fit maps the darker frames to the background, and an object left before is still
    # seen (ABODA video 4 x0.5 at 5 s: its bag raised); lights on clip what the fit would need
    relearns_on_lighting = "brighter"
    config_model = AbandonedObjectConfig

    def __init__(self, config: AbandonedObjectConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or AbandonedObjectConfig()
        self.device = torch.device(device)
        c = self.config
        self._bg = DualBackground(DualBackgroundConfig(
            long_tau_s=c.long_tau_s, short_tau_s=c.short_tau_s, diff_threshold=c.diff_threshold,
            open_px=c.open_px, gain_compensation=False, warmup_s=c.warmup_s, warmup_stable_s=c.warmup_stable_s),
            device=self.device)  # gain: see _exposure_matched
        self._bank: CameraStateBank | None = None
        self._clock = FrameClock()
        self._zones = ZoneMasks(c.zones, (160, 120), self.device) if c.zones else None
        self._tracks: dict[str, list[_Track]] = {}
        self._ids = TrackIds("abandoned")
        self._schedule = EmissionSchedule(c.repeat_s)
        self._fg_long: torch.Tensor | None = None  # (N, 1, h, w) bool of the batch being processed
        self._matched: torch.Tensor | None = None  # (N, 3, h, w) exposure-matched frames of that batch
        self._cpu: dict[tuple[str, int], np.ndarray] = {}  # CPU copies for the per-object stage

    # -- per-pixel stage (batched, on the device) ---------------------------------
    def _exposure_matched(self, batch: FrameBatch) -> torch.Tensor:
        """``batch.rgb`` mapped to the exposure of each camera's long-term background.

        Per camera and channel, ``bg ~ a * frame + b`` on every 4th pixel of every 4th row, clipped ones
        (0.98 or more in either) left out:
        ``b`` starts at the median of ``bg - frame`` (robust to up to half the frame in the
        foreground), then ``a`` (in [0.4, 2.5]) and ``b`` are refitted by least squares on
        the pixels within 0.1 of that. A re-exposure is close to affine (measured: an offset
        of 0.07-0.1 over all intensities); lights switched on or off are a gain (the range of
        ``a`` takes the x0.5 lighting step of :mod:`vigie.evaluate.transforms`). New cameras
        are left as they are.
        """
        rgb = batch.rgb
        refs = [self._bg.backgrounds(cam) for cam in batch.camera_ids]
        if all(r is None for r in refs):
            return rgb
        ref = torch.stack([r[0] if r is not None else rgb[i] for i, r in enumerate(refs)])
        x, y = rgb[..., ::4, ::4].flatten(2), ref[..., ::4, ::4].flatten(2)  # (N, 3, P)
        clipped = (x >= 0.98) | (y >= 0.98)  # an over-exposed wall says nothing of the exposure
        b0 = (y - x).masked_fill(clipped, float("nan")).nanmedian(2, keepdim=True).values.nan_to_num(0.0)
        w = (((y - x - b0).abs() < 0.1) & ~clipped).float()
        n = w.sum(2, keepdim=True).clamp_min(1.0)
        mx, my = (w * x).sum(2, keepdim=True) / n, (w * y).sum(2, keepdim=True) / n
        cov = (w * (x - mx) * (y - my)).sum(2, keepdim=True)
        vx = (w * (x - mx) ** 2).sum(2, keepdim=True)
        a = (cov / vx.clamp_min(1e-6)).clamp(0.4, 2.5)
        a = torch.where(vx > 1e-3 * n, a, torch.ones_like(a))  # flat scenes: offset only
        b = my - a * mx
        return (a[..., None] * rgb + b[..., None]).clamp_(0.0, 1.0)

    def _maps(self, batch: FrameBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.config
        ids = batch.camera_ids
        dt = torch.tensor(self._clock.tick(ids, batch.time_ns, batch.fps)[0], dtype=torch.float32,
                          device=self.device)
        self._matched = self._exposure_matched(batch)
        fg_long, fg_short = self._bg.update(self._matched, ids, dt)
        static = opening(fg_long & ~fg_short, c.open_px)
        if self._zones is not None:
            static &= self._zones.for_batch(batch).any(1, keepdim=True)
        if self._bank is None:
            shape = (1, *batch.gray.shape[-2:])
            self._bank = CameraStateBank({"evidence": (shape, torch.float32), "recent": (shape, torch.float32)},
                                         device=self.device)
        idx = self._bank.index(ids)
        st = self._bank.gather(ids, index=idx)
        dtv = dt.view(-1, 1, 1, 1)
        static &= ~self._bg.warming(ids).view(-1, 1, 1, 1)  # no evidence until the camera is warm
        evidence = accrue(st["evidence"], static, dtv, c.decay, c.dwell_s + c.hold_s)
        recent = torch.where(fg_short, torch.full_like(dtv, c.owner_absent_s), st["recent"] - dtv)
        recent.clamp_(min=0.0)
        self._bank.scatter(ids, {"evidence": evidence, "recent": recent}, index=idx)
        return evidence, recent, fg_long

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Update every camera of ``batch`` and return the abandoned-object detections.

        Args:
            batch: frames with ``rgb (N, 3, h, w) float32`` in [0, 1] on this analytic's device.

        Raises:
            ValueError: the working size differs from the first batch's.

        Returns:
            Detections (kind ``"abandoned_object"``), boxes in original frame pixels,
            ``attributes``: ``static_s`` (seconds static), ``unattended_s``, ``area_px``.
        """
        evidence, recent, self._fg_long = self._maps(batch)
        self._cpu = {}
        confirmed = evidence >= self.config.dwell_s
        flags = confirmed.flatten(1).any(1).tolist()
        conf_cpu = grouped_cpu = None
        if any(flags):  # connected components only where candidates exist
            conf_cpu = confirmed[:, 0].cpu().numpy()
            self._cpu.update({("confirmed", i): conf_cpu[i] for i in range(len(batch))})
            grouped_cpu = dilate(confirmed, 5)[:, 0].cpu().numpy()  # joins pieces up to 4 px apart
        # frame score: static evidence up to the dwell time gives [0, 0.5]; a raised object gives its score
        self._scores = (0.5 * (evidence.flatten(1).amax(1) / self.config.dwell_s).clamp(0.0, 1.0)).cpu()
        out: list[Detection] = []
        for i, cam in enumerate(batch.camera_ids):
            blobs = self._blobs(conf_cpu[i], grouped_cpu[i], batch.frame_sizes[i]) if flags[i] else []
            out.extend(self._track(i, cam, batch, blobs, recent))
        self.last_scores = self._scores
        return out

    # -- per-object stage (CPU, only where candidates exist) ----------------------
    def _scale(self, frame_size: tuple[int, int]) -> tuple[float, float]:
        h, w = self._bank.shape("evidence")[-2:]
        return frame_size[0] / w, frame_size[1] / h

    def _blobs(self, mask: np.ndarray, grouped: np.ndarray, frame_size: tuple[int, int]) -> list[_Blob]:
        c = self.config
        sx, sy = self._scale(frame_size)
        labels, n = ndimage.label(grouped, structure=_EIGHT)
        if n == 0:
            return []
        core = np.where(mask, labels, 0)  # boxes and areas from the confirmed pixels themselves
        areas = np.bincount(core.ravel(), minlength=n + 1)
        blobs = []
        for k, sl in enumerate(ndimage.find_objects(core, max_label=n), start=1):
            area_px = areas[k] * sx * sy
            if sl is None or not (c.min_area_px <= area_px <= c.max_area_px):
                continue
            box = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
            blobs.append(_Blob(box=box, area=int(areas[k]), mask=core == k))
        return blobs

    def _attended(self, blob: _Blob, recent: np.ndarray, frame_size: tuple[int, int]) -> bool:
        c = self.config
        sx, sy = self._scale(frame_size)
        h, w = recent.shape
        rx, ry = int(np.ceil(c.owner_radius_px / sx)), int(np.ceil(c.owner_radius_px / sy))
        x0, y0, x1, y1 = blob.box
        ys, xs = slice(max(0, y0 - ry), min(h, y1 + ry)), slice(max(0, x0 - rx), min(w, x1 + rx))
        moving = (recent[ys, xs] > 0) & ~blob.mask[ys, xs]
        return moving.sum() * sx * sy >= c.owner_min_px

    def _track(self, i: int, cam: str, batch: FrameBatch, blobs: list[_Blob],
               recent: torch.Tensor) -> list[Detection]:
        c = self.config
        now = batch.time_ns[i]
        tracks = self._tracks.setdefault(cam, [])
        matched: dict[int, list[_Blob]] = {}
        for blob in blobs:
            best, best_iou = None, c.match_iou
            for t_i, t in enumerate(tracks):
                iou = _iou(blob.box, t.box)
                if iou >= best_iou or (best is None and (_inside(blob.box, t.box) or _inside(t.box, blob.box))):
                    best, best_iou = t_i, max(iou, best_iou)
            if best is None:
                if self._spurious(i, cam, blob, batch):
                    continue
                tracks.append(_Track(self._ids.new(cam), blob.box, now, now))
                best = len(tracks) - 1
            matched.setdefault(best, []).append(blob)

        recent_cpu = None
        out = []
        for t_i, t in enumerate(tracks):
            group = matched.get(t_i)
            if not group:
                continue
            t.box = (min(b.box[0] for b in group), min(b.box[1] for b in group),
                     max(b.box[2] for b in group), max(b.box[3] for b in group))
            t.last_ns = now
            if t.raised_ns is None:
                if recent_cpu is None:
                    recent_cpu = recent[i, 0].cpu().numpy()
                if any(self._attended(b, recent_cpu, batch.frame_sizes[i]) for b in group):
                    continue
                if not self._settled(i, cam, t, group, self._cpu[("confirmed", i)], batch.frame_sizes[i]):
                    continue
                later = batch.objects_later and batch.object_detector is not None and not t.wait_for_objects
                if not later and self._person(i, t, batch):
                    continue
                t.raised_ns = now
            else:
                later = False
            self._scores[i] = max(float(self._scores[i]), self._score(t, now))
            if not self._schedule.due(t.last_emit_ns, now):
                continue
            t.last_emit_ns = now
            detection = self._detection(i, t, group, batch.frame_sizes[i], now)
            if later:
                detection.check = ObjectCheck(partial(person_over, detection.boxes[0]), PERSON_OVER, "PERSON_STILL")
            out.append(detection)
        self._tracks[cam] = [t for t in tracks if (now - t.last_ns) <= c.linger_s * 1e9]
        return out

    def _region(self, i: int, mask: np.ndarray) -> np.ndarray:
        """The long-term foreground region ``(h, w) bool`` connected to ``mask`` in frame ``i``."""
        key = ("fg_long", i)
        if key not in self._cpu:
            self._cpu[key] = self._fg_long[i, 0].cpu().numpy()
        labels, _ = ndimage.label(self._cpu[key] | mask, structure=_EIGHT)
        return np.isin(labels, np.unique(labels[mask]))

    def _spurious(self, i: int, cam: str, blob: _Blob, batch: FrameBatch) -> bool:
        """Whether a new blob is a ghost or camera jitter rather than a new object; if so, heal it.

        Ghost: edge-energy test of Tian, Lu, Hampapur, "Robust and efficient foreground
        analysis for real-time video surveillance", CVPR 2005: an object that was put
        down adds edges on the region's boundary in the current frame; a region
        uncovered by an object that moved away (e.g. someone present at start-up) has
        its edges in the long-term background instead.
        Jitter: the blob's frame content is explained (mean absolute difference below
        half of the unshifted one) by the long-term background shifted by at most
        ``jitter_px`` working pixels: a drifting or shaking camera moves painted lines.
        Flat offset: the frame differs from the long-term background by a near-uniform offset
        no larger than ``flat_offset`` (:func:`~vigie.detector.analytics.regiontests.uniform_offset`):
        a bare wall whose brightness follows the exposure, lifted over the threshold by noise
        or compression blocks; a left object brings structure of its own.
        Any of these is written into the backgrounds and its evidence cleared.
        """
        c = self.config
        long_bg, _ = self._bg.backgrounds(cam)
        frame, back = self._matched[i].cpu().numpy(), long_bg.cpu().numpy()
        # the whole long-term foreground region around the blob: a blob confirmed piecewise
        # (part of it was crossed by someone) would otherwise have a boundary inside the object
        region = self._region(i, blob.mask)
        band = ndimage.binary_dilation(region, _EIGHT) & ~ndimage.binary_erosion(region, _EIGHT)
        e_frame, e_back = edge_energy(frame, band), edge_energy(back, band)
        if (e_back <= c.ghost_ratio * e_frame and not shifted_match(frame, back, region, c.jitter_px)
                and not uniform_offset(frame, back, region, c.flat_offset)):
            return False
        region = torch.from_numpy(ndimage.binary_dilation(region, _EIGHT, iterations=2)).to(self.device)
        self._bg.heal(cam, region, self._matched[i])
        st = self._bank.gather([cam])
        st["evidence"] = st["evidence"].masked_fill(region, 0.0)
        self._bank.scatter([cam], st)
        return True

    def _settled(self, i: int, cam: str, t: _Track, group: list[_Blob], confirmed: np.ndarray,
                 frame_size: tuple[int, int]) -> bool:
        """Whether a track's long-term foreground region is object-sized, object-shaped and still.

        The region connected to the track's blobs must be at most ``max_area_px``, be
        ``min_static_frac`` confirmed static, have a box (frame pixels) at most ``max_elongation``
        times as tall as wide or as wide as tall, and show no life: the mean max-channel difference
        between the frame and the short-term background inside it, averaged over the track's frames
        (running mean, weight 0.3 on the newest), must stay below ``still_ratio`` times that in a
        ring 3-6 working pixels around it (at least 1/255).
        """
        c = self.config
        sx, sy = self._scale(frame_size)
        region = self._region(i, np.logical_or.reduce([b.mask for b in group]))
        area = int(region.sum())
        if area * sx * sy > c.max_area_px or int((confirmed & region).sum()) < c.min_static_frac * area:
            return False
        ys, xs = np.nonzero(region)
        rh, rw = (int(ys.max()) - int(ys.min()) + 1) * sy, (int(xs.max()) - int(xs.min()) + 1) * sx
        if max(rh / rw, rw / rh) > c.max_elongation:  # someone standing, or lying, still
            return False
        _, short_bg = self._bg.backgrounds(cam)
        diff = (self._matched[i] - short_bg).abs().amax(0).cpu().numpy()
        ring = ndimage.binary_dilation(region, _EIGHT, iterations=6) & ~ndimage.binary_dilation(
            region, _EIGHT, iterations=2)
        ratio = float(diff[region].mean()) / max(float(diff[ring].mean()) if ring.any() else 0.0, 1.0 / 255.0)
        t.lively = ratio if t.lively is None else t.lively + 0.3 * (ratio - t.lively)
        return t.lively <= c.still_ratio

    def _person(self, i: int, t: _Track, batch: FrameBatch) -> bool:
        """Whether the object-class stage (when on) sees a person over most of the track's box:
        someone standing still, not a left object. False when the stage is off."""
        objects = batch.objects(i)
        return bool(objects) and person_over(self._frame_box(t.box, batch.frame_sizes[i]), objects)

    def _frame_box(self, box: tuple[int, int, int, int], frame_size: tuple[int, int]) -> Box:
        """A working-pixel box ``(x0, y0, x1, y1)`` in frame pixels."""
        sx, sy = self._scale(frame_size)
        x0, y0, x1, y1 = box
        fx0, fy0 = int(np.floor(x0 * sx)), int(np.floor(y0 * sy))
        return Box(fx0, fy0, min(frame_size[0], int(np.ceil(x1 * sx))) - fx0,
                   min(frame_size[1], int(np.ceil(y1 * sy))) - fy0)

    def _score(self, t: _Track, now: int) -> float:
        """Score of a raised track: 0.6 when raised, rising to 1 after another dwell time unattended."""
        return float(min(1.0, 0.6 + 0.4 * (now - t.raised_ns) / 1e9 / self.config.dwell_s))

    def _detection(self, i: int, t: _Track, group: list[_Blob], frame_size: tuple[int, int], now: int) -> Detection:
        c = self.config
        sx, sy = self._scale(frame_size)
        box = self._frame_box(t.box, frame_size)
        unattended = (now - t.raised_ns) / 1e9
        return Detection(
            index=i, kind=self.kind, score=self._score(t, now), boxes=[box],
            track_id=t.track_id,
            attributes={"static_s": (now - t.first_ns) / 1e9 + c.dwell_s, "unattended_s": unattended,
                        "area_px": float(sum(b.area for b in group) * sx * sy)})

    def warming(self, camera_id: str) -> bool:
        """Whether ``camera_id`` is still in its cold-start warm-up (``warmup_s`` stream seconds from its
        first frame here; an unknown camera is): nothing can be raised for it yet, and whatever stays
        still until the warm-up ends becomes scene (an object left before is not reported)."""
        return bool(self._bg.warming([camera_id])[0])

    def withdraw(self, camera_id: str, track_id: str) -> None:
        """The stage saw a person over the track raised before its verdict: unraise it; it is raised again only
        once the stage, consulted before raising from now on, no longer sees one (or the track ends)."""
        for t in self._tracks.get(camera_id, []):
            if t.track_id == track_id:
                t.raised_ns, t.last_emit_ns, t.wait_for_objects = None, None, True

    def forget(self, camera_id: str) -> None:
        """Drop every state of ``camera_id`` (backgrounds, evidence, tracks); it warms up again."""
        self._bg.forget(camera_id)
        if self._bank is not None:
            self._bank.forget(camera_id)
        self._clock.forget(camera_id)
        self._tracks.pop(camera_id, None)  # track numbers keep counting: ids stay unique
