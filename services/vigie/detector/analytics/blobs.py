"""Foreground blobs shared by the zone analytics (intrusion, wrong way, density).

Three pieces, used together or apart:

* :class:`Foreground`: one running-average RGB background per camera, batched on the
  device. Foreground = 3x3-smoothed max-channel absolute difference above a threshold
  (after a global gain correction: median over 8x8 blocks of the brightness ratio),
  minus cast shadows (optional), then a morphological opening; plus a *moving* mask
  from the frame difference. The background learns with time constant ``tau_s`` where
  the frame is background and ``hold_tau_s`` where it is foreground (selective update:
  someone standing still stays foreground for about ``hold_tau_s``; not on frames that
  are mostly foreground, a sudden light change, which would lock in). While the camera
  is younger than ``tau_s`` nothing is held and the background is the cumulative mean
  of the frames seen, except near moving pixels (bootstrap: people present at start-up
  leave ghosts that fade in a few frames, passers-by leave no trail). Running-average background subtraction with selective update:
  Wren et al., "Pfinder: real-time tracking of the human body", IEEE PAMI 1997;
  shadows after Horprasert, Harwood, Davis, "A statistical approach for real-time
  robust background subtraction and shadow detection", ICCV FRAME-RATE workshop 1999
  (a pixel darker than the background by a uniform factor in every channel, i.e. same
  chromaticity, is a shadow, not an object).
* :func:`find_blobs`: connected components (8-connectivity, scipy, CPU) of one mask,
  as boxes in frame pixels with their *footprint* (bottom-centre of the box, where a
  person stands).
* :class:`BlobTracker`: per-camera greedy nearest-neighbour association of blobs
  between frames, with a constant-velocity prediction. It follows *positions only*:
  no appearance descriptor is computed, so nobody is identified or re-identified; a
  track lives only while its blob is seen (plus ``linger_s``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from vigie.detector.analytics.background import box_sum3, dilate, global_gain, opening, rates
from vigie.detector.analytics.base import Box, FrameBatch
from vigie.detector.analytics.zones import ZoneMasks
from vigie.detector.state import CameraStateBank, FrameClock

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(slots=True)
class ForegroundMaps:
    """Output of :meth:`Foreground.update` for a batch of ``N`` frames.

    Attributes:
        fg: ``(N, 1, h, w) bool`` foreground after shadow removal and opening.
        moving: ``(N, 1, h, w) bool`` pixels that changed since the camera's previous frame
            (all False on a camera's first frame and after a stream gap).
        dt_s: ``N`` seconds since each camera's previous frame (:class:`FrameClock`).
        restarts: ``N`` flags, True on a camera's first frame or after a stream gap.
        prev: ``(N, 1, h, w) float32`` each camera's previous grey frame (the current one
            after a restart), for frame-to-frame measures such as optical flow.
    """

    fg: torch.Tensor
    moving: torch.Tensor
    dt_s: list[float]
    restarts: list[bool]
    prev: torch.Tensor


class ForegroundSettings(BaseModel):
    """Background-subtraction fields shared by the zone analytics' settings (see :class:`Foreground`)."""

    model_config = ConfigDict(extra="forbid")

    background_tau_s: float = Field(5.0, ge=0.5, le=3600.0, description=(
        "Time constant of the background where the scene is empty, seconds."))
    hold_tau_s: float = Field(30.0, ge=0.5, le=86400.0, description=(
        "Time constant of the background under foreground, seconds: someone standing still stays "
        "foreground for about this long (taken as at least background_tau_s)."))
    diff_threshold: float = Field(0.08, gt=0.0, lt=1.0, description=(
        "Foreground threshold on the 3x3-mean max-channel difference to the background, intensity in [0, 1]."))
    motion_threshold: float = Field(0.03, gt=0.0, lt=1.0, description=(
        "Threshold on the 3x3-mean grey difference between consecutive frames, intensity in [0, 1]."))
    open_px: int = Field(3, ge=1, le=9, description="Opening size of the foreground mask, working pixels (odd).")
    ghost_check_s: float = Field(2.0, ge=0.0, le=3600.0, description=(
        "Seconds between two checks of a camera for ghosts (background uncovered by something that "
        "left), which are healed; 0 never checks."))
    shadows: bool = Field(False, description=(
        "Drop cast shadows: pixels 0.6-0.95 times as bright as the background in every channel alike "
        "(off by default: it also drops dark-grey clothing on grey ground)."))

    def foreground(self, device: torch.device | str) -> "Foreground":
        """A :class:`Foreground` with these settings on ``device``."""
        return Foreground(self.background_tau_s, self.hold_tau_s, self.diff_threshold, self.motion_threshold,
                          self.open_px, self.shadows, ghost_check_s=self.ghost_check_s, device=device)


class SharesForeground:
    """Mixin of analytics whose ``config`` holds :class:`ForegroundSettings` and whose ``_fg`` is
    their :class:`Foreground`: :meth:`share` swaps it for the plan's model with the same settings."""

    def share(self, stages) -> None:
        """Use ``stages.foreground(self.config)`` (a :class:`~vigie.detector.analytics.shared.SharedStages`)."""
        self._fg = stages.foreground(self.config)


class Foreground:
    """Running-average background with selective update and shadow removal, per camera.

    Args:
        tau_s: time constant of the background where the frame matches it, seconds.
        hold_tau_s: time constant where the frame is foreground, seconds (>= ``tau_s``).
        diff_threshold: foreground threshold on the 3x3-mean max-channel difference, in [0, 1].
        motion_threshold: threshold on the 3x3-mean grey frame difference, in [0, 1].
        open_px: opening size, working pixels (1 = none).
        shadows: remove cast shadows (see :meth:`shadow`).
        ghost_check_s: seconds between two ghost checks of a camera (see :meth:`_ghosts`); 0: never.
        shadow_ratio: ``(lo, hi)`` brightness ratio frame/background of a shadow.
        shadow_chroma: largest spread of the three per-channel ratios of a shadow.
        device: torch device of the batches.

    State per camera (:class:`CameraStateBank`): background ``(3, h, w)``, previous grey
    frame ``(1, h, w)`` and age ``(1,)`` seconds, ``float32``.
    """

    def __init__(self, tau_s: float, hold_tau_s: float, diff_threshold: float = 0.08,
                 motion_threshold: float = 0.03, open_px: int = 3, shadows: bool = False,
                 shadow_ratio: tuple[float, float] = (0.6, 0.95), shadow_chroma: float = 0.03,
                 ghost_check_s: float = 2.0, device: torch.device | str = "cpu") -> None:
        self.tau_s, self.hold_tau_s = tau_s, max(tau_s, hold_tau_s)
        self.diff_threshold, self.motion_threshold = diff_threshold, motion_threshold
        self.open_px, self.shadows = open_px, shadows
        self.shadow_ratio, self.shadow_chroma = shadow_ratio, shadow_chroma
        self.ghost_check_s = ghost_check_s
        self._checked: dict[str, int] = {}  # camera -> stream time of its last ghost check
        self.device = torch.device(device)
        self._bank: CameraStateBank | None = None
        self._clock = FrameClock()

    def shadow(self, rgb: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        """``(N, 1, h, w) bool``: pixels of ``rgb`` that are a shadow on ``bg`` (both ``(N, 3, h, w)``).

        A shadow darkens every channel by about the same factor: the per-channel ratios
        frame/background all lie in ``shadow_ratio`` and differ by at most ``shadow_chroma``.
        """
        r = rgb / bg.clamp_min(0.03)
        lo, hi = r.amin(1, keepdim=True), r.amax(1, keepdim=True)
        return (lo >= self.shadow_ratio[0]) & (hi <= self.shadow_ratio[1]) & ((hi - lo) <= self.shadow_chroma)

    def update(self, batch: FrameBatch) -> ForegroundMaps:
        """Compare the frames of ``batch`` with their cameras' backgrounds, then update them.

        Raises:
            ValueError: the working size differs from the first batch's.
        """
        rgb, gray, ids = batch.rgb, batch.gray, batch.camera_ids
        h, w = rgb.shape[-2:]
        if self._bank is None:
            f32 = torch.float32
            self._bank = CameraStateBank({"bg": ((3, h, w), f32), "prev": ((1, h, w), f32), "age": ((1,), f32)},
                                         device=self.device)
        elif self._bank.shape("bg") != (3, h, w):
            raise ValueError(f"working size changed from {self._bank.shape('bg')[1:]} to {(h, w)}")
        dts, restarts = self._clock.tick(ids, batch.time_ns, batch.fps)
        dt = torch.tensor(dts, dtype=torch.float32, device=self.device).view(-1, 1, 1, 1)
        idx = self._bank.index(ids)
        st = self._bank.gather(ids, index=idx)
        bg, prev, age = st["bg"], st["prev"], st["age"].view(-1, 1, 1, 1)
        if any(self._bank.is_new(c) for c in ids):
            new = self._bank.new_mask(ids).view(-1, 1, 1, 1)
            bg, prev, age = torch.where(new, rgb, bg), torch.where(new, gray, prev), age.masked_fill(new, 0.0)

        gain = global_gain(rgb, bg)  # illumination
        diff = torch.addcmul(rgb, bg, gain, value=-1.0).abs_().amax(1, keepdim=True)
        fg = box_sum3(torch.cat((diff, (gray - prev).abs_()), 1))
        fg, moving = fg[:, 0:1] > 9.0 * self.diff_threshold, fg[:, 1:2] > 9.0 * self.motion_threshold
        if self.shadows:
            fg &= ~self.shadow(rgb, bg * gain)
        fg = opening(fg, self.open_px)
        valid = torch.tensor([not r for r in restarts], device=self.device).view(-1, 1, 1, 1)
        moving &= valid
        prev = torch.where(valid, prev, gray)
        ghosts = self._ghosts(batch, bg, fg, moving)
        if ghosts is not None:  # heal: the frame is the background there
            bg = torch.where(ghosts, rgb, bg)
            fg &= ~ghosts

        # selective update, except on frames mostly foreground (a sudden light change: no
        # lock-in) and while the camera is young (start-up occupants' ghosts must heal)
        young = age < self.tau_s
        held = fg & ((fg.flatten(1).float().mean(1) < 0.5).view(-1, 1, 1, 1) & ~young)
        a = torch.where(held, rates(dt.view(-1), self.hold_tau_s), rates(dt.view(-1), self.tau_s))
        if bool(young.any()):  # cumulative mean while young, except near motion (no trails)
            a = torch.where(dilate(moving, 5) | ~young, a, torch.maximum(a, dt / (age + dt)))
        bg = torch.lerp(bg, rgb, a)
        self._bank.scatter(ids, {"bg": bg, "prev": gray, "age": (age + dt).view(-1, 1)}, index=idx)
        return ForegroundMaps(fg=fg, moving=moving, dt_s=dts, restarts=restarts, prev=prev)

    def _ghosts(self, batch: FrameBatch, bg: torch.Tensor, fg: torch.Tensor,
                moving: torch.Tensor) -> torch.Tensor | None:
        """``(N, 1, h, w) bool`` ghosts found in the cameras due a check, or None.

        A *ghost* is background uncovered by something that left after it had become part
        of the background (someone present at start-up or standing for a long time): a
        static foreground blob (under 5 % moving pixels) whose boundary has more edge
        energy in the background than in the frame; a real object adds its edges to the
        frame. Test of Tian, Lu, Hampapur, "Robust and efficient foreground analysis for
        real-time video surveillance", CVPR 2005. Checked every ``ghost_check_s`` per camera.
        """
        if self.ghost_check_s <= 0:
            return None
        due = [i for i, (c, t) in enumerate(zip(batch.camera_ids, batch.time_ns))
               if not 0 <= t - self._checked.get(c, t - 10**18) < self.ghost_check_s * 1e9]
        for i in due:
            self._checked[batch.camera_ids[i]] = batch.time_ns[i]
        due = [i for i in due if bool(fg[i].any())]
        if not due:
            return None
        index = torch.tensor(due, device=self.device)
        grey = torch.cat((batch.gray.index_select(0, index), bg.index_select(0, index).mean(1, keepdim=True)), 1)
        edges = F.pad(grey[..., :, 2:] - grey[..., :, :-2], (1, 1)).abs_() + \
            F.pad(grey[..., 2:, :] - grey[..., :-2, :], (0, 0, 1, 1)).abs_()
        sel_fg = fg.index_select(0, index)
        maps = [m.cpu().numpy() for m in (sel_fg[:, 0], dilate(sel_fg, 3)[:, 0], moving.index_select(0, index)[:, 0],
                                          edges)]
        out = torch.zeros_like(fg)
        for k, i in enumerate(due):
            mask, grown, mov, edge = (m[k] for m in maps)
            labels, n = ndimage.label(grown, structure=_EIGHT)
            flat = labels.ravel()
            inner = np.where(mask, labels, 0).ravel()
            static = np.bincount(inner[mov.ravel()], minlength=n + 1) < 0.05 * np.bincount(inner, minlength=n + 1)
            band = np.where(ndimage.binary_erosion(mask, _EIGHT, border_value=1), 0, labels).ravel()  # boundary
            e_frame = np.bincount(band, weights=edge[0].ravel(), minlength=n + 1)
            e_back = np.bincount(band, weights=edge[1].ravel(), minlength=n + 1)
            ghost = static & (e_back > e_frame)
            ghost[0] = False
            if ghost.any():
                out[i, 0] = torch.from_numpy(ghost[labels]).to(self.device)
        return out

    def forget(self, camera_id: str) -> None:
        """Drop the camera's background; its next frame starts afresh."""
        if self._bank is not None:
            self._bank.forget(camera_id)
        self._clock.forget(camera_id)
        self._checked.pop(camera_id, None)


@dataclass(slots=True)
class Blob:
    """One connected foreground component.

    Attributes:
        box: bounding box in frame pixels.
        work_box: ``(x0, y0, x1, y1)`` in working pixels, ends exclusive.
        area_px: foreground area in frame pixels squared.
        moving_frac: fraction of its pixels in the *moving* mask.
        label: its label in the labelled working grid returned by :func:`find_blobs`.
    """

    box: Box
    work_box: tuple[int, int, int, int]
    area_px: float
    moving_frac: float
    label: int

    @property
    def foot(self) -> tuple[float, float]:
        """Footprint: bottom-centre of the box ``(x, y)``, frame pixels."""
        return self.box.x + self.box.w / 2.0, float(self.box.y + self.box.h)

    @property
    def centre(self) -> tuple[float, float]:
        """Centre of the box ``(x, y)``, frame pixels."""
        return self.box.x + self.box.w / 2.0, self.box.y + self.box.h / 2.0


def find_blobs(mask: np.ndarray, frame_size: tuple[int, int], min_area_px: float,
               moving: np.ndarray | None = None, join_px: int = 3,
               grouped: np.ndarray | None = None) -> tuple[list[Blob], np.ndarray]:
    """Connected components of a working-grid mask, mapped to frame pixels.

    Args:
        mask: ``(h, w) bool`` foreground on the working grid.
        frame_size: ``(width, height)`` of the original frame, pixels.
        min_area_px: smallest component kept, frame pixels squared.
        moving: optional ``(h, w) bool`` moving mask, for :attr:`Blob.moving_frac`.
        join_px: pieces closer than about this many working pixels are one blob
            (components of the mask dilated by ``join_px``; 1 = plain components).
        grouped: that dilated mask ``(h, w) bool`` when already computed (e.g. batched on the device).

    Returns:
        ``(blobs, labels)``: the kept blobs (largest first) and the ``(h, w) int32`` labels of
        the grouped (dilated) mask, 0 = background; areas and boxes count the mask's own pixels.
    """
    h, w = mask.shape
    sx, sy = frame_size[0] / w, frame_size[1] / h
    if grouped is None:
        grouped = dilate(torch.from_numpy(mask)[None, None], join_px)[0, 0].numpy() if join_px > 1 else mask
    labels, n = ndimage.label(grouped, structure=_EIGHT)
    if n == 0:
        return [], labels
    core = np.where(mask, labels, 0)
    flat = core.ravel()
    areas = np.bincount(flat, minlength=n + 1)
    mov = np.bincount(flat[moving.ravel()], minlength=n + 1) if moving is not None else None
    blobs = []
    for k, sl in enumerate(ndimage.find_objects(core, max_label=n), start=1):
        if sl is None or areas[k] * sx * sy < min_area_px:
            continue
        x0, y0, x1, y1 = sl[1].start, sl[0].start, sl[1].stop, sl[0].stop
        fx0, fy0 = int(math.floor(x0 * sx)), int(math.floor(y0 * sy))
        fx1, fy1 = min(frame_size[0], int(math.ceil(x1 * sx))), min(frame_size[1], int(math.ceil(y1 * sy)))
        blobs.append(Blob(box=Box(fx0, fy0, fx1 - fx0, fy1 - fy0), work_box=(x0, y0, x1, y1),
                          area_px=float(areas[k] * sx * sy),
                          moving_frac=float(mov[k] / areas[k]) if mov is not None else 0.0, label=k))
    blobs.sort(key=lambda b: -b.area_px)
    return blobs, labels


def zone_of(blob: Blob, masks: np.ndarray, frame_size: tuple[int, int]) -> int:
    """Index of the first zone holding the blob's footprint, or -1.

    ``masks`` is ``(Z, h, w) bool`` (any grid size; the footprint is mapped onto it).
    """
    _, h, w = masks.shape
    fx, fy = blob.foot
    col = min(w - 1, max(0, int(fx * w / frame_size[0])))
    row = min(h - 1, max(0, int((fy - 0.5) * h / frame_size[1])))
    hits = np.flatnonzero(masks[:, row, col])
    return int(hits[0]) if hits.size else -1


class ZoneGate:
    """Per frame size, the union of zone masks dilated by ``margin`` working pixels, on a device.

    Used to skip the CPU blob stage on frames with no foreground near any zone.
    """

    def __init__(self, zones: ZoneMasks, margin: int, device: torch.device | str) -> None:
        self.zones, self.margin, self.device = zones, margin, torch.device(device)
        self._cache: dict[tuple[tuple[int, int], tuple[int, int]], torch.Tensor] = {}

    def near(self, batch: FrameBatch, fg: torch.Tensor) -> list[bool]:
        """Which frames of ``batch`` have ``fg (N, 1, h, w) bool`` pixels near a zone."""
        if not self.zones.zones:
            return fg.flatten(1).any(1).tolist()
        h, w = fg.shape[-2:]
        masks = []
        for size in batch.frame_sizes:
            key = (size, (w, h))
            if key not in self._cache:
                self.zones.for_batch(batch)  # keeps the zone grid at the batch's working size
                union = self.zones.get(size).any(0)[None, None]
                self._cache[key] = dilate(union, self.margin).to(self.device)
            masks.append(self._cache[key])
        return (fg & torch.cat(masks)).flatten(1).any(1).tolist()


@dataclass(slots=True)
class BlobTrack:
    """A blob followed across frames of one camera (positions only).

    Attributes:
        number: per-camera serial number (never reused).
        blob: the blob matched on the latest frame it was seen.
        first_ns, last_ns: stream times it was first and last seen.
        velocity: ``(vx, vy)`` of the box centre, frame pixels per second (smoothed).
        frames: number of frames it was seen on.
        moved: whether its blob was ever mostly made of moving pixels (a ghost never is).
        state: free per-analytic state (timers, emission times).
    """

    number: int
    blob: Blob
    first_ns: int
    last_ns: int
    velocity: tuple[float, float] = (0.0, 0.0)
    frames: int = 0
    moved: bool = False
    state: dict[str, Any] = field(default_factory=dict)


class BlobTracker:
    """Greedy nearest-neighbour blob tracking per camera, with constant-velocity prediction.

    A blob joins the track whose predicted box centre is nearest, when that distance is
    at most ``gate`` times the larger side of the two boxes (each blob and each track is
    matched at most once; unmatched blobs start tracks; a track unseen for more than
    ``linger_s`` seconds is dropped). A blob counts as moving when at least
    ``moving_frac`` of its pixels changed since the previous frame.
    """

    def __init__(self, gate: float = 0.8, linger_s: float = 1.0, moving_frac: float = 0.2) -> None:
        self.gate, self.linger_s, self.moving_frac = gate, linger_s, moving_frac
        self._tracks: dict[str, list[BlobTrack]] = {}
        self._next: dict[str, int] = {}

    def tracks(self, camera_id: str) -> list[BlobTrack]:
        """Live tracks of ``camera_id``."""
        return self._tracks.get(camera_id, [])

    def update(self, camera_id: str, now_ns: int, blobs: Sequence[Blob]) -> list[BlobTrack]:
        """Associate ``blobs`` of the camera's frame at ``now_ns``; returns the tracks seen on it."""
        tracks = self._tracks.setdefault(camera_id, [])
        pairs = []
        for ti, t in enumerate(tracks):
            dt = (now_ns - t.last_ns) / 1e9
            cx, cy = t.blob.centre
            px, py = cx + t.velocity[0] * dt, cy + t.velocity[1] * dt
            for bi, b in enumerate(blobs):
                bx, by = b.centre
                scale = max(t.blob.box.w, t.blob.box.h, b.box.w, b.box.h, 1)
                d = math.hypot(bx - px, by - py) / scale
                if d <= self.gate:
                    pairs.append((d, ti, bi))
        pairs.sort()
        used_t, used_b, seen = set(), set(), []
        for _, ti, bi in pairs:
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            t, b = tracks[ti], blobs[bi]
            dt = (now_ns - t.last_ns) / 1e9
            if dt > 0:
                (ox, oy), (nx, ny) = t.blob.centre, b.centre
                v = ((nx - ox) / dt, (ny - oy) / dt)
                t.velocity = v if t.frames < 2 else tuple(0.5 * (a + c) for a, c in zip(t.velocity, v))
            t.blob, t.last_ns = b, now_ns
            seen.append(t)
        for bi, b in enumerate(blobs):
            if bi not in used_b:
                n = self._next.get(camera_id, 0) + 1
                self._next[camera_id] = n
                t = BlobTrack(number=n, blob=b, first_ns=now_ns, last_ns=now_ns)
                tracks.append(t)
                seen.append(t)
        for t in seen:
            t.frames += 1
            t.moved = t.moved or t.blob.moving_frac >= self.moving_frac
        self._tracks[camera_id] = [t for t in tracks if now_ns - t.last_ns <= self.linger_s * 1e9]
        return seen

    def forget(self, camera_id: str) -> None:
        """Drop the camera's tracks (serial numbers keep counting, so ids stay unique)."""
        self._tracks.pop(camera_id, None)
