"""Wrong-way analytic: movement against a zone's allowed direction (one-way passage, exit lane).

Method:

1. :class:`~vigie.detector.analytics.blobs.Foreground` gives each camera's foreground and
   moving masks; cameras with foreground near a zone get their connected components
   (blobs, CPU), followed by :class:`~vigie.detector.analytics.blobs.BlobTracker`
   (positions only, nobody is identified).
2. Each blob's velocity is measured from the image itself, not from its box: the
   least-squares (Lucas-Kanade) solution of the brightness-constancy equations
   ``gx * u + gy * v + It = 0`` over the blob's moving pixels (B. D. Lucas, T. Kanade,
   "An iterative image registration technique with an application to stereo vision",
   IJCAI 1981), on the 5x5-smoothed grey frames (the normal-flow sums of
   :mod:`~vigie.detector.analytics.crowd`, here as a 2x2 system per blob, Tikhonov
   regularised). Unlike the displacement of a box, it does not jump when blobs merge
   or split, and the ghost of someone who left (static pixels) contributes nothing.
   Per track the velocities are integrated into a displacement over the last
   ``window_s`` seconds (frame pixels). Speeds are right for walkers moving a few working
   pixels per frame (PETS 2009 at 7 fps: median 1.0x the ground truth, direction within
   60 degrees for 96 % of blobs); the linearisation underestimates larger steps (MOT15
   TUD close-ups: ~0.6x at 25 fps, ~0.1x at 5 fps), keeping their direction.
3. A zone (:class:`DirectedZone`) allows the heading ``heading_deg`` (image
   coordinates: 0 = towards +x, right; 90 = towards +y, down). A track whose footprint
   (bottom-centre) is in the zone moves *the wrong way* when the angle between its
   displacement and the heading exceeds ``90 + tolerance_deg`` degrees (i.e. it is
   within ``90 - tolerance_deg`` of the exact opposite direction; crossing the passage
   at right angles is allowed) and its backward component ``-d . heading`` is at least
   ``min_distance_px``. It is raised after ``min_duration_s`` of wrong-way motion in a row.

Each raised track keeps one ``track_id`` (``"<camera>/wrong_way/<n>"``) and emits on the
frame it is raised, then every ``repeat_s`` while it keeps going the wrong way. Frame
score (``last_scores``): over tracks in a zone with a wrong-way angle,
``min(1, 0.5 * backward_px / min_distance_px)`` (0.5 at the distance threshold).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from vigie.detector.analytics.background import box_sum3, dilate
from vigie.detector.analytics.base import Analytic, Detection, FrameBatch
from vigie.detector.analytics.blobs import BlobTrack, ForegroundSettings, zone_of
from vigie.detector.analytics.zones import Zone
from vigie.detector.analytics.zonetracks import ZoneTracks


class DirectedZone(Zone):
    """A zone with an allowed direction of travel."""

    heading_deg: float = Field(ge=-360.0, le=360.0, description=(
        "Allowed heading in degrees, image coordinates: 0 = rightwards (+x), 90 = downwards (+y), "
        "180 = leftwards, 270 (or -90) = upwards."))
    tolerance_deg: float = Field(30.0, ge=0.0, le=89.0, description=(
        "Motion is wrong-way when its angle to the heading exceeds 90 + this many degrees."))


class WrongWayConfig(ForegroundSettings):
    """Settings of :class:`WrongWay` (times in seconds, distances and sizes in frame pixels)."""

    zones: list[DirectedZone] = Field(default_factory=list, max_length=64, description=(
        "Directed zones; empty means the whole frame with heading_deg and tolerance_deg."))
    heading_deg: float = Field(0.0, ge=-360.0, le=360.0, description=(
        "Allowed heading of the whole frame when no zone is given, degrees (0 = rightwards, 90 = downwards)."))
    tolerance_deg: float = Field(30.0, ge=0.0, le=89.0, description=(
        "Tolerance of the whole-frame heading when no zone is given, degrees."))
    window_s: float = Field(1.0, ge=0.2, le=30.0, description=(
        "Seconds over which a track's displacement is measured."))
    min_distance_px: float = Field(20.0, ge=1.0, le=10000.0, description=(
        "Smallest backward displacement over window_s, frame pixels."))
    min_duration_s: float = Field(0.5, ge=0.0, le=600.0, description=(
        "Seconds of wrong-way motion in a row before raising."))
    min_area_px: float = Field(300.0, ge=1.0, le=1e7, description="Smallest blob area, frame pixels squared.")
    flow_regularizer: float = Field(0.01, ge=0.0, le=10.0, description=(
        "Tikhonov term of the per-blob least-squares flow, relative to the mean squared gradient: "
        "blobs without texture read as still."))
    linger_s: float = Field(1.0, ge=0.0, le=60.0, description="Seconds a blob track survives without its blob.")
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit a wrong-way track every this many seconds while it lasts; 0 emits every frame."))


def _gradients(gray: torch.Tensor, prev: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
    """``(N, 3, h, w) float32`` brightness-constancy terms ``gx, gy, It``, zero off ``moving``.

    ``gray`` and ``prev`` are ``(N, 1, h, w)`` grey frames; both are smoothed by two 3x3
    means, gradients are central differences of their average, ``It`` their difference;
    ``moving`` is ``(N, 1, h, w) bool``.
    """
    s = box_sum3(box_sum3(torch.cat((gray, prev), 1))).mul_(1.0 / 81.0)
    mid = s.sum(1, keepdim=True).mul_(0.5)
    return torch.cat((F.pad(mid[..., :, 2:] - mid[..., :, :-2], (1, 1)).mul_(0.5),
                      F.pad(mid[..., 2:, :] - mid[..., :-2, :], (0, 0, 1, 1)).mul_(0.5),
                      s[:, 0:1] - s[:, 1:2]), 1).mul_(moving)


class WrongWay(ZoneTracks, Analytic):
    """Wrong-way detector over batches of cameras (see the module docstring).

    Args:
        config: :class:`WrongWayConfig`.
        device: torch device of the batches.

    State: the background of each camera (:class:`Foreground`) and its blob tracks (Python).
    """

    kind = "wrong_way"
    config_model = WrongWayConfig

    def __init__(self, config: WrongWayConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = c = config or WrongWayConfig()
        self._setup(c, device, "wrong_way")
        directions = [(z.heading_deg, z.tolerance_deg) for z in c.zones] or [(c.heading_deg, c.tolerance_deg)]
        self._headings = [(math.cos(math.radians(h)), math.sin(math.radians(h)), 90.0 + tol) for h, tol in directions]

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Update every camera of ``batch`` and return the wrong-way detections.

        Args:
            batch: frames with ``rgb (N, 3, h, w)`` and ``gray (N, 1, h, w)`` float32 in [0, 1].

        Raises:
            ValueError: the working size differs from the first batch's.

        Returns:
            Detections (kind ``"wrong_way"``), one box (the blob, frame pixels), ``attributes``:
            ``backward_px`` (backward displacement over ``window_s``), ``angle_deg`` (between
            the motion and the allowed heading), ``duration_s`` (seconds going the wrong way),
            ``zone`` (index in ``zones``, 0 for the whole frame).
        """
        c = self.config
        maps = self._fg.update(batch)
        gate = self._gate.near(batch, maps.fg)
        scores = [0.0] * len(batch)
        out: list[Detection] = []
        if any(gate):
            sel = [i for i, g in enumerate(gate) if g]
            index = torch.tensor(sel, device=self.device)
            terms = _gradients(batch.gray.index_select(0, index), maps.prev.index_select(0, index),
                               dilate(maps.moving.index_select(0, index), 3)).cpu().numpy()
            for k, i, seen, labels, zmask in self._tracked(batch, maps, sel, c.min_area_px):
                cam, size = batch.camera_ids[i], batch.frame_sizes[i]
                shift = self._shift(terms[k], labels, size)
                for track in seen:
                    det, score = self._step(i, cam, batch, track, shift[track.blob.label], maps.dt_s[i],
                                            zone_of(track.blob, zmask, size))
                    scores[i] = max(scores[i], score)
                    if det is not None:
                        out.append(det)
        self.last_scores = torch.tensor(scores, dtype=torch.float32)
        return out

    def _shift(self, terms: np.ndarray, labels: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
        """Per-label displacement since the previous frame ``(L + 1, 2)``, frame pixels.

        Solves the regularised 2x2 Lucas-Kanade system of each label from ``terms (3, h, w)``
        (``gx, gy, It`` of :func:`_gradients`).
        """
        h, w = labels.shape
        n = int(labels.max()) + 1
        flat = labels.ravel()
        t = terms.reshape(3, -1)
        idx = np.flatnonzero((flat > 0) & (t[2] != 0))  # moving blob pixels only
        gx, gy, it = t[:, idx]
        prods = np.stack((gx * gx, gx * gy, gy * gy, gx * it, gy * it))
        keys = (flat[idx].astype(np.intp)[None, :] * 5 + np.arange(5)[:, None]).ravel()  # (label, product)
        sums = np.bincount(keys, weights=prods.ravel(), minlength=5 * n).reshape(n, 5)
        a11, a12, a22, b1, b2 = sums.T
        lam = self.config.flow_regularizer * 0.5 * (a11 + a22) + 1e-9
        a11, a22 = a11 + lam, a22 + lam
        det = a11 * a22 - a12 * a12
        u = -(a22 * b1 - a12 * b2) / det
        v = -(a11 * b2 - a12 * b1) / det
        return np.stack((u * frame_size[0] / w, v * frame_size[1] / h), 1)

    def _step(self, i: int, cam: str, batch: FrameBatch, track: BlobTrack, step: np.ndarray, dt: float,
              zone: int) -> tuple[Detection | None, float]:
        """Add one frame's displacement ``step (2,)`` (frame pixels, over ``dt`` seconds) to a track.

        Returns its detection (or None) and its frame score.
        """
        c = self.config
        now, st = batch.time_ns[i], track.state
        steps = st.setdefault("steps", deque())
        steps.append((now, float(step[0]), float(step[1]), dt))
        while len(steps) > 1 and now - steps[0][0] > (c.window_s - steps[0][3]) * 1e9 + 1e6:  # last window_s
            steps.popleft()
        span = sum(s[3] for s in steps)
        if zone < 0 or span < 0.5 * c.window_s:
            st.pop("since", None)
            return None, 0.0
        dx, dy = sum(s[1] for s in steps), sum(s[2] for s in steps)
        hx, hy, max_angle = self._headings[zone]
        along, dist = dx * hx + dy * hy, math.hypot(dx, dy)
        angle = math.degrees(math.acos(max(-1.0, min(1.0, along / dist)))) if dist > 0 else 0.0
        if angle <= max_angle:
            st.pop("since", None)
            return None, 0.0
        score = min(1.0, 0.5 * -along / c.min_distance_px)
        if -along < c.min_distance_px:
            st.pop("since", None)
            return None, score
        if st.get("zone") != zone or "since" not in st:
            st["zone"], st["since"] = zone, now
        duration = (now - st["since"]) / 1e9
        if duration + 1e-9 < c.min_duration_s:
            return None, score
        track_id = self._emission(st, cam, now)
        if track_id is None:
            return None, score
        return Detection(index=i, kind=self.kind, score=score, boxes=[track.blob.box], track_id=track_id,
                         attributes={"backward_px": -along, "angle_deg": angle, "duration_s": duration,
                                     "zone": float(zone)}), score
