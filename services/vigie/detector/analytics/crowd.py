"""Crowd-movement analytic: surge, sudden dispersal and running, against each camera's own baseline.

Motion field. Between consecutive 3x3-smoothed grey frames at the working size, one
Lucas-Kanade flow vector is solved per cell of a ``grid_cols x grid_rows`` grid
(least squares of ``gx u + gy v + It = 0`` over the cell: the average-pooled 2x2
structure tensor is inverted in closed form; Lucas & Kanade, IJCAI 1981), in working
pixels per second; the default 20x15 grid gives 8x8-pixel cells, about one walker.
A cell *moves* when at least ``min_moving_frac`` of its pixels differ by more than
``motion_threshold``; flow and speed count only there. Fraction, flow and speed are
smoothed per cell with time constant ``smooth_tau_s``.

One statistic per mode and cell (``mode`` attribute: 1 surge, 2 dispersal, 3 running):

* **running**: the cell speed (a cyclist or a cart among walkers, people running);
* **dispersal / surge**: radial coherence of the flow around the cell. Over each half
  (left, right, top, bottom) of a window of ``coherence_window`` blocks of 2x2 cells,
  ``sum(cos)/sqrt(n/2 + 1)`` of the angle between each moving cell's flow direction
  and the outward direction from the centre (a Rayleigh-type statistic: about N(0, 1)
  for random directions), gated by the number ``n`` of moving cells (nothing below
  ``crowd_cells / 2``, in full from ``1.5 crowd_cells``) so that a few people are no crowd. Expansion needs both halves of an axis outward (a group translating
  through the window is outward on one half only): dispersal ``max over axes of
  min(both halves)``, surge (rush or convergence) the same with inward directions.
  This is the flow divergence of Andrade, Blunsden & Fisher, "Modelling crowd scenes
  for event detection", ICPR 2006, made robust to speed; Mehran, Oyama & Shah,
  "Abnormal crowd behavior detection using social force model", CVPR 2009, inspired
  the split.

Baseline per location, after Adam, Rivlin, Shimshoni & Reinitz, "Robust real-time
unusual event detection using multiple fixed-location monitors", IEEE TPAMI 2008:
each cell keeps an exponential running mean and variance of its three statistics
(time constant ``baseline_tau_s``, a cumulative average while learning starts; speed
only while the cell moves; upper semi-variance for the coherences, so a convergence
does not widen the dispersal baseline). A cell's baseline is shrunk towards its 5x5
neighbourhood's (perspective changes speeds smoothly), itself shrunk towards the
camera-wide one, with weights ``m / (m + prior_motion_s)`` from the seconds of motion
``m`` seen. After warm-up an update counts a deviation at most 3 sigma, and the
baseline is frozen once an anomaly has lasted ``min_duration_s`` (for at most
``max_freeze_s``). ``z = (x - mean) / sqrt(var + floor^2)``.

Decision. A cell is anomalous for a mode when its z exceeds the mode's threshold
(``coherence_z_threshold`` or ``z_threshold``); a mode raises when at least
``min_cells`` cells stay anomalous for ``min_duration_s`` (gaps shorter than
``release_s`` do not interrupt it). Each mode's episode has a ``track_id``
``"{camera}/crowd/{surge|dispersal|running}/{n}"`` and emits on the frame it is
raised, then every ``repeat_s``; boxes are the 8-connected groups of anomalous cells
in original frame pixels. The frame score (``last_scores``) is
``sigmoid(e / 2)`` with ``e`` the largest z minus its mode's threshold over enabled
modes and cells (0 before ``warmup_s`` and right after a stream gap). Only motion is
measured: no one is identified or followed.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from vigie.detector.analytics.background import box_sum3, rates
from vigie.detector.analytics.base import Analytic, Box, Detection, FrameBatch
from vigie.detector.analytics.episodes import WITH_SUB, Episodes
from vigie.detector.analytics.zones import Zone, ZoneMasks
from vigie.detector.state import CameraStateBank, FrameClock

#: Mode names; the ``mode`` attribute is the index + 1 (1 surge, 2 dispersal, 3 running).
MODES = ("surge", "dispersal", "running")
_SCORE_SCALE = 2.0  # z units per logistic unit of the frame score (no float saturation below z ~ 30)


class CrowdMovementConfig(BaseModel):
    """Settings of :class:`CrowdMovement` (times in seconds, speeds in working pixels per second)."""

    model_config = ConfigDict(extra="forbid")

    modes: list[Literal["surge", "dispersal", "running"]] = Field(
        default_factory=lambda: list(MODES), max_length=3, description="Movement types to detect.")
    zones: list[Zone] = Field(default_factory=list, max_length=32, description=(
        "Areas watched (cells at least half inside one); empty: the whole frame."))
    grid_cols: int = Field(20, ge=2, le=64, description="Grid columns over the frame (cells of the motion field).")
    grid_rows: int = Field(15, ge=2, le=64, description="Grid rows over the frame.")
    motion_threshold: float = Field(0.03, gt=0.0, lt=1.0, description=(
        "Grey-level difference between consecutive frames, in [0, 1], above which a pixel is moving."))
    min_moving_frac: float = Field(0.05, gt=0.0, le=1.0, description=(
        "Fraction of moving pixels from which a cell moves (its flow is used and its speed learned)."))
    flow_support: float = Field(1e-4, gt=0.0, le=1.0, description=(
        "Regulariser of the flow solve (mean squared gradient over a cell): untextured cells read as still."))
    smooth_tau_s: float = Field(0.3, ge=0.0, le=10.0, description=(
        "Time constant of the per-cell smoothing of fraction, flow and speed, seconds (0: none)."))
    coherence_window: int = Field(7, ge=3, le=15, description=(
        "Side of the radial-coherence window, in blocks of 2x2 cells (an even value is rounded up)."))
    crowd_cells: float = Field(8.0, ge=0.0, le=1000.0, description=(
        "Moving cells in a half window at which its radial coherence counts half; it counts nothing "
        "below half of that and fully from 1.5 times that (a couple walking apart is no dispersal)."))
    baseline_tau_s: float = Field(600.0, ge=5.0, le=86400.0, description=(
        "Time constant of each camera's running mean and variance of motion, seconds."))
    warmup_s: float = Field(120.0, ge=0.0, le=86400.0, description=(
        "Seconds of baseline learning before the camera may raise anything."))
    prior_motion_s: float = Field(10.0, gt=0.0, le=86400.0, description=(
        "Seconds of observed motion after which a cell's own baseline outweighs its neighbourhood's."))
    z_threshold: float = Field(4.5, ge=0.5, le=100.0, description=(
        "z-score of the cell speed above which a cell is running."))
    coherence_z_threshold: float = Field(4.0, ge=0.5, le=100.0, description=(
        "z-score of the radial coherence above which a cell is a surge (inward) or a dispersal (outward)."))
    speed_floor_px_s: float = Field(0.5, gt=0.0, le=1000.0, description=(
        "Standard-deviation floor of the cell speed, working pixels per second."))
    coherence_floor: float = Field(1.0, gt=0.0, le=100.0, description=(
        "Standard-deviation floor of the radial coherence (a z-like statistic, no unit)."))
    min_cells: int = Field(1, ge=1, le=4096, description=(
        "Cells that must be anomalous together for a mode to count as anomalous in a frame."))
    min_duration_s: float = Field(2.0, ge=0.0, le=600.0, description=(
        "Seconds a mode must stay anomalous before a detection is raised."))
    release_s: float = Field(1.0, ge=0.0, le=600.0, description=(
        "Anomaly gaps shorter than this, seconds, do not end an episode."))
    max_freeze_s: float = Field(120.0, ge=1.0, le=86400.0, description=(
        "Longest time, seconds, the baseline stays frozen during an anomaly."))
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit an active episode every this many seconds; 0 emits every anomalous frame."))


def _half_windows(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``(4, 2 k^2)`` of the outward unit direction (channels x, y) over the left, right,
    top and bottom halves of a ``k x k`` window, and the halves' masks ``(4, k^2)``."""
    r = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    norm = (dx * dx + dy * dy).sqrt().clamp_min(1e-6)
    halves = torch.stack((dx < 0, dx > 0, dy < 0, dy > 0)).float()  # (4, k, k)
    return torch.cat((halves * dx / norm, halves * dy / norm), 1).view(4, -1), halves.view(4, -1)


class CrowdMovement(Analytic):
    """Surge, dispersal and running detector against each camera's baseline (see the module docstring).

    Args:
        config: :class:`CrowdMovementConfig`.
        device: torch device of the batches.

    Per-camera state in a :class:`~vigie.detector.state.CameraStateBank`: previous smoothed
    grey frame ``(1, h, w)``; per cell ``(11, rows, cols)``: smoothed fraction, flow u, v,
    speed, then baseline mean (3) and variance (3) of the mode statistics and seconds of
    motion seen; per camera ``(9,)``: camera-wide mean (3) and variance (3), seconds learned,
    seconds anomalous in a row, seconds of motion seen; all ``float32``. Episodes per
    (camera, mode) in Python. :meth:`process` runs under ``torch.inference_mode`` and raises
    ``ValueError`` when the working size changes between batches.
    """

    kind = "crowd_movement"
    config_model = CrowdMovementConfig

    def __init__(self, config: CrowdMovementConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = c = config or CrowdMovementConfig()
        self.device = torch.device(device)
        self._bank: CameraStateBank | None = None
        self._clock = FrameClock()
        self._episodes = Episodes("crowd", c.repeat_s, c.release_s, min_duration_s=c.min_duration_s,
                                  template=WITH_SUB)
        self._zones = ZoneMasks(c.zones, (160, 120), self.device) if c.zones else None
        self._k = c.coherence_window | 1
        self._radial, self._halves = (w.to(self.device) for w in _half_windows(self._k))
        self._floor2 = torch.tensor([c.coherence_floor, c.coherence_floor, c.speed_floor_px_s],
                                    device=self.device).view(1, 3, 1, 1) ** 2
        self._thr = torch.tensor([c.coherence_z_threshold, c.coherence_z_threshold, c.z_threshold],
                                 device=self.device).view(1, 3, 1, 1)
        self._modes = torch.tensor([m in c.modes for m in MODES], device=self.device).view(1, 3, 1, 1)
        self._semi = torch.tensor([math.sqrt(2.0), math.sqrt(2.0), 0.0], device=self.device).view(1, 3, 1, 1)

    def _motion(self, gray: torch.Tensor, prev: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """Per cell ``(N, 4, rows, cols)``: moving fraction, flow u, v and speed (px/s), from
        smoothed grey frames ``(N, 1, h, w)`` ``dt`` ``(N,)`` seconds apart."""
        c = self.config
        it = gray - prev
        mid = (gray + prev) * 0.5
        g = torch.cat((F.pad(mid[..., :, 2:] - mid[..., :, :-2], (1, 1)),
                       F.pad(mid[..., 2:, :] - mid[..., :-2, :], (0, 0, 1, 1))), 1) * 0.5  # gx, gy
        t = torch.cat((g * g, g[:, :1] * g[:, 1:], g * it, (it.abs() > c.motion_threshold).float()), 1)
        h, w = t.shape[-2:]
        if h % c.grid_rows == 0 and w % c.grid_cols == 0:  # plain pooling is faster than adaptive
            t = F.avg_pool2d(t, (h // c.grid_rows, w // c.grid_cols))
        else:
            t = F.adaptive_avg_pool2d(t, (c.grid_rows, c.grid_cols))
        a, d, b, ex, ey, frac = t.unbind(1)
        a, d = a + c.flow_support, d + c.flow_support
        inv = 1.0 / ((a * d - b * b) * dt.view(-1, 1, 1))
        u, v = (b * ey - d * ex) * inv, (b * ex - a * ey) * inv
        return torch.stack((frac, u, v, torch.sqrt(u * u + v * v)), 1)

    def _coherence(self, short: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
        """Surge and dispersal statistics ``(N, 2, rows, cols)`` from smoothed cell features
        ``short (N, 4, rows, cols)`` and moving cells ``has (N, rows, cols)`` (0/1)."""
        c = self.config
        R, C, k = c.grid_rows, c.grid_cols, self._k
        unit = short[:, 1:3] * (has[:, None] / (short[:, 3:4] + c.speed_floor_px_s))  # |unit| <= 1
        # blocks of 2x2 cells, then window sums as im2col + matmul (faster on CPU than conv2d here)
        src = F.avg_pool2d(F.pad(torch.cat((unit, has[:, None]), 1), (0, C % 2, 0, R % 2)), 2) * 4.0
        rc, cc = src.shape[-2:]
        cols = F.unfold(src, k, padding=k // 2)  # (N, 3 k^2, rc cc)
        sums = (self._radial @ cols[:, : 2 * k * k]).view(-1, 4, rc, cc)
        count = (self._halves @ cols[:, 2 * k * k:]).view(-1, 4, rc, cc)
        gate = ((count - 0.5 * c.crowd_cells) / max(c.crowd_cells, 1e-6)).clamp(0.0, 1.0)
        half = sums / (0.5 * count + 1.0).sqrt() * gate
        half = half.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :R, :C]  # L, R, T, B outward
        out = torch.minimum(half[:, 0::2], half[:, 1::2]).amax(1)  # both halves of an axis outward
        inward = torch.minimum(-half[:, 0::2], -half[:, 1::2]).amax(1)
        return torch.stack((inward, out), 1)

    def _reference(self, mean: torch.Tensor, var: torch.Tensor, motion: torch.Tensor, gmean: torch.Tensor,
                   gvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance ``(N, 3, R, C)`` each cell is compared with: its own, shrunk towards
        its 5x5 neighbourhood's (motion-weighted), shrunk towards the camera-wide one."""
        prior = self.config.prior_motion_s
        m = motion[:, None]
        pooled = F.avg_pool2d(torch.cat((m, m * mean, m * (var + mean * mean)), 1), 5, stride=1, padding=2,
                              count_include_pad=False)
        nb_m = pooled[:, :1].clamp_min(1e-6)
        nb_mean = pooled[:, 1:4] / nb_m
        nb_var = (pooled[:, 4:7] / nb_m - nb_mean * nb_mean).clamp_min(0.0)
        w_nb, w = nb_m * 25.0 / (nb_m * 25.0 + prior), m / (m + prior)
        return (torch.lerp(torch.lerp(gmean, nb_mean, w_nb), mean, w),
                torch.lerp(torch.lerp(gvar, nb_var, w_nb), var, w))

    def _cell_mask(self, batch: FrameBatch) -> torch.Tensor | None:
        """``(N, 1, rows, cols) bool`` cells at least half inside a zone, or None without zones."""
        if self._zones is None:
            return None
        c = self.config
        inside = self._zones.for_batch(batch).any(1, keepdim=True).float()
        return F.adaptive_avg_pool2d(inside, (c.grid_rows, c.grid_cols)) >= 0.5

    def _step(self, batch: FrameBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Update state; returns cell z ``(N, 3, rows, cols)`` per mode (-1e3 where not scored) and
        anomalous modes ``(N, 3) bool``."""
        c = self.config
        ids, gray = batch.camera_ids, batch.gray
        h, w = gray.shape[-2:]
        if self._bank is None:
            f32 = torch.float32
            self._bank = CameraStateBank({"prev": ((1, h, w), f32), "grid": ((11, c.grid_rows, c.grid_cols), f32),
                                          "vec": ((9,), f32)}, device=self.device)
        elif self._bank.shape("prev") != (1, h, w):
            raise ValueError(f"working size changed from {self._bank.shape('prev')[1:]} to {(h, w)}")
        dts, restarts = self._clock.tick(ids, batch.time_ns, batch.fps)
        dt = torch.tensor(dts, dtype=torch.float32, device=self.device)
        idx = self._bank.index(ids)
        valid = ~(self._bank.new_mask(ids) | torch.tensor(restarts, device=self.device))
        vf = valid.float().view(-1, 1, 1, 1)
        st = self._bank.gather(ids, index=idx)

        smooth = box_sum3(gray).mul_(1.0 / 9.0)
        feats = self._motion(smooth, st["prev"], dt)
        feats = torch.cat((feats[:, :1], feats[:, 1:] * (feats[:, :1] >= c.min_moving_frac)), 1) * vf
        a_sm = rates(dt, c.smooth_tau_s) if c.smooth_tau_s > 0 else torch.ones_like(vf)
        short = st["grid"][:, :4] * vf  # a stream gap restarts the smoothing from the next frame
        fresh = short[:, :1].sum((2, 3), keepdim=True) == 0
        short = torch.where(fresh, feats, short + a_sm * (feats - short))
        has = (short[:, 0] >= c.min_moving_frac).float()
        x = torch.cat((self._coherence(short, has), short[:, 3:4]), 1)  # (N, 3, R, C) in MODES order

        cell, vec = st["grid"][:, 4:], st["vec"]
        mean, var, motion_c = cell[:, 0:3], cell[:, 3:6], cell[:, 6]
        gmean, gvar = vec[:, 0:3, None, None], vec[:, 3:6, None, None]
        learned, run, motion_g = vec[:, 6], vec[:, 7], vec[:, 8]
        ref_mean, ref_var = self._reference(mean, var, motion_c, gmean, gvar)
        sigma = (ref_var + self._floor2).sqrt()
        scored = torch.cat((torch.ones_like(x[:, :2]), has[:, None]), 1)  # speed only where it moves
        active = valid & (learned >= c.warmup_s)
        keep = self._modes & active.view(-1, 1, 1, 1) & (scored > 0)
        cells = self._cell_mask(batch)
        if cells is not None:
            keep = keep & cells
        z = torch.where(keep, (x - ref_mean) / sigma, torch.full_like(x, -1e3))
        anom = ((z > self._thr).flatten(2).sum(2) >= c.min_cells)  # (N, 3)

        # learning: frozen once an anomaly has lasted min_duration_s (isolated outliers are still
        # learned, so the variance is not biased low), and again after max_freeze_s
        run = torch.where(anom.any(1), run + dt, torch.zeros_like(run))
        upd = (valid & ~((run > c.min_duration_s) & (run <= c.min_duration_s + c.max_freeze_s))).float()
        a_tau = rates(dt, c.baseline_tau_s).view(-1) * upd
        a = torch.maximum(a_tau, dt / (learned + dt)) * upd  # cumulative average while learning starts
        motion_c = motion_c * (1.0 - a_tau.view(-1, 1, 1)) + has * (dt * upd).view(-1, 1, 1)
        a_s = torch.maximum(a_tau.view(-1, 1, 1), dt.view(-1, 1, 1) / motion_c.clamp_min(1e-6)).clamp_max(1.0)
        rate = torch.cat((a.view(-1, 1, 1, 1).expand_as(x[:, :2]), (a_s * has * upd.view(-1, 1, 1))[:, None]), 1)
        # after warm-up a deviation counts at most 3 sigma (winsorised: one event does not blow up
        # the variance before it is declared); coherences learn their upper semi-variance
        lim = torch.where(active.view(-1, 1, 1, 1), 3.0 * sigma, torch.full_like(sigma, math.inf))
        d = torch.minimum(torch.maximum(x - mean, -lim), lim)
        dv = torch.where(self._semi > 0, d.clamp_min(0.0) * self._semi, d)
        cell = torch.cat((mean + rate * d, (1.0 - rate) * (var + rate * dv * dv), motion_c[:, None]), 1)
        # camera-wide baseline, pooled over cells (over moving cells for the speed)
        any_mov = (has.sum((1, 2)) > 0).float()
        motion_g = motion_g * (1.0 - a_tau) + dt * any_mov * upd
        a_g = any_mov * upd * torch.maximum(a_tau, dt / motion_g.clamp_min(1e-6)).clamp_max(1.0)
        n = scored.sum((2, 3)).clamp_min(1.0)
        dg = x - gmean
        dg = torch.where(self._semi > 0, dg.clamp_min(0.0) * self._semi, dg)
        pooled = torch.cat(((scored * x).sum((2, 3)) / n, (scored * dg * dg).sum((2, 3)) / n), 1)
        g_rate = torch.stack((a, a, a_g), 1).repeat(1, 2)
        vec = torch.cat((vec[:, :6] + g_rate * (pooled - vec[:, :6]),
                         torch.stack((learned + dt * upd, run, motion_g), 1)), 1)
        self._bank.scatter(ids, {"prev": smooth, "grid": torch.cat((short, cell), 1), "vec": vec}, index=idx)
        return z, anom

    @torch.inference_mode()
    def score(self, batch: FrameBatch) -> torch.Tensor:
        """Process ``batch`` (see :meth:`process`) and return its frame scores ``(N,) float32`` in [0, 1]."""
        self.process(batch)
        return self.last_scores

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Advance every camera by ``batch`` and return crowd-movement detections.

        Sets ``last_scores``, ``(N,) float32`` on the CPU (see the module docstring).

        Returns:
            Detections (kind ``"crowd_movement"``), one per raised mode and frame, with one box
            per connected group of anomalous cells (original frame pixels), ``score`` =
            ``sigmoid(z - threshold)`` of the mode, ``attributes``: ``mode`` (1 surge,
            2 dispersal, 3 running), ``z``, ``duration_s``, ``cells``.
        """
        z, anom = self._step(batch)
        excess = z.flatten(2).amax(2) - self._thr.view(1, 3)  # (N, 3)
        self.last_scores = torch.sigmoid(excess.amax(1) / _SCORE_SCALE).float().cpu()
        anom_l, ex_l = anom.tolist(), excess.tolist()
        cells = (z > self._thr).cpu().numpy() if any(any(r) for r in anom_l) else None
        out = []
        for i, cam in enumerate(batch.camera_ids):
            for m in range(3):
                det = self._episode(i, cam, m, batch.time_ns[i], anom_l[i][m], ex_l[i][m], cells,
                                    batch.frame_sizes[i])
                if det is not None:
                    out.append(det)
        return out

    def _episode(self, i: int, cam: str, m: int, now: int, anom: bool, excess: float,
                 cells: np.ndarray | None, frame_size: tuple[int, int]) -> Detection | None:
        """Advance the episode of mode ``m`` of ``cam``; returns the detection to emit now, if any."""
        emit = self._episodes.update(cam, now, anom, MODES[m])
        if emit is None:
            return None
        boxes, n_cells = self._cells_boxes(cells[i, m], frame_size)
        return Detection(index=i, kind=self.kind, score=1.0 / (1.0 + math.exp(-excess)), boxes=boxes,
                         track_id=emit.track_id,
                         attributes={"mode": float(m + 1), "z": excess + float(self._thr.view(3)[m]),
                                     "duration_s": emit.duration_s, "cells": float(n_cells)})

    def _cells_boxes(self, cells: np.ndarray, frame_size: tuple[int, int]) -> tuple[list[Box], int]:
        """Boxes (frame pixels) of the 8-connected groups of anomalous cells ``(rows, cols) bool``."""
        c = self.config
        W, H = frame_size
        labels, _ = ndimage.label(cells, structure=np.ones((3, 3), dtype=bool))
        boxes = []
        for rows, cols in ndimage.find_objects(labels):
            x0, x1 = (cols.start * W) // c.grid_cols, -((-cols.stop * W) // c.grid_cols)
            y0, y1 = (rows.start * H) // c.grid_rows, -((-rows.stop * H) // c.grid_rows)
            boxes.append(Box(x0, y0, x1 - x0, y1 - y0))
        return boxes, int(cells.sum())

    def forget(self, camera_id: str) -> None:
        """Drop the camera's baseline, previous frame and episodes (track numbers keep counting)."""
        if self._bank is not None:
            self._bank.forget(camera_id)
        self._clock.forget(camera_id)
        self._episodes.forget(camera_id)
