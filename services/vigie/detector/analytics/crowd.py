"""Crowd-movement analytic: motion far above what this camera usually sees.

Per frame, motion is measured between consecutive (3x3-smoothed) grey frames
at the working size. Per cell of a ``grid_cols x grid_rows`` grid it gives two
features: the *moving fraction* (pixels whose difference exceeds
``motion_threshold``) and the *speed*, a least-squares normal-flow magnitude
``sum |I_t| |grad I| / sum |grad I|^2`` over the cell's moving pixels, in
working pixels per second (Horn & Schunck's brightness-constancy constraint,
magnitude only: a running crowd or a cyclist among walkers is faster).

Each camera learns its own baseline: per cell, an exponential running mean and
variance of each feature with time constant ``baseline_tau_s`` (a cumulative
average while learning starts; the speed only from frames where the cell
moves), plus a camera-wide mean and variance pooled over cells. A cell's
baseline is shrunk towards the camera-wide one until it has seen about
``prior_motion_s`` seconds of motion, so a first passer-by in an area nobody
crossed while learning is not an anomaly by itself. The baseline is frozen
while an anomaly is active, i.e. once it has lasted ``min_duration_s``
(isolated outliers are still learned, which keeps the variance honest), for at
most ``max_freeze_s``, after which a lasting change is learned.

A cell's z-score is the larger of ``(x - mean) / sqrt(var + floor^2)`` of its
two features; the frame's z is the largest cell z and its score
``1 / (1 + exp(-(z - z_threshold)))`` (0.5 at the threshold; 0 before
``warmup_s`` of learning and right after a stream gap). A detection is raised
when at least ``min_cells`` cells stay above ``z_threshold`` for
``min_duration_s`` (gaps shorter than ``release_s`` do not interrupt it). The
episode keeps one ``track_id`` and emits on the frame it is raised, then every
``repeat_s`` (0: every anomalous frame). The box is the union of the anomalous
cells, in original frame pixels.

This is the classic baseline-deviation approach to crowd anomaly, evaluated on
the UCSD benchmark (Mahadevan et al., "Anomaly Detection in Crowded Scenes",
CVPR 2010). It measures motion only and identifies no one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from vigie.detector.analytics.background import box_sum3, rates
from vigie.detector.analytics.base import Analytic, Box, Detection, FrameBatch
from vigie.detector.state import CameraStateBank, FrameClock


class CrowdMovementConfig(BaseModel):
    """Settings of :class:`CrowdMovement` (times in seconds)."""

    model_config = ConfigDict(extra="forbid")

    grid_cols: int = Field(6, ge=1, le=64, description="Grid columns over the frame.")
    grid_rows: int = Field(4, ge=1, le=64, description="Grid rows over the frame.")
    motion_threshold: float = Field(0.04, gt=0.0, lt=1.0, description=(
        "Grey-level difference between consecutive frames, in [0, 1], above which a pixel is moving."))
    baseline_tau_s: float = Field(600.0, ge=5.0, le=86400.0, description=(
        "Time constant of each camera's running mean and variance of motion, seconds."))
    warmup_s: float = Field(120.0, ge=0.0, le=86400.0, description=(
        "Seconds of baseline learning before the camera may raise anything."))
    z_threshold: float = Field(4.0, ge=0.5, le=100.0, description="z-score above which a cell is anomalous.")
    sigma_floor: float = Field(0.03, gt=0.0, le=1.0, description=(
        "Standard-deviation floor of the moving fraction, so quiet cells are not oversensitive."))
    speed_floor_px_s: float = Field(0.5, gt=0.0, le=1000.0, description=(
        "Standard-deviation floor of the cell speed, working pixels per second."))
    speed_support: float = Field(2e-4, gt=0.0, le=1.0, description=(
        "Regulariser of the speed estimate (mean squared gradient over the cell): cells with little "
        "textured motion read as slow."))
    min_moving_frac: float = Field(0.02, gt=0.0, le=1.0, description=(
        "Moving fraction from which a cell's speed is measured and learned."))
    prior_motion_s: float = Field(10.0, gt=0.0, le=86400.0, description=(
        "Seconds of observed motion after which a cell's own baseline outweighs the camera-wide one."))
    min_cells: int = Field(1, ge=1, le=4096, description=(
        "Cells that must be anomalous together for the frame to count as anomalous."))
    min_duration_s: float = Field(2.0, ge=0.0, le=600.0, description=(
        "Seconds the frame must stay anomalous before a detection is raised."))
    release_s: float = Field(1.0, ge=0.0, le=600.0, description=(
        "Anomaly gaps shorter than this, seconds, do not end an episode."))
    max_freeze_s: float = Field(120.0, ge=1.0, le=86400.0, description=(
        "Longest time, seconds, the baseline stays frozen during an anomaly."))
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit an active episode every this many seconds; 0 emits every anomalous frame."))


@dataclass(slots=True)
class _Episode:
    start_ns: int | None = None
    last_anom_ns: int | None = None
    track_id: str = ""
    last_emit_ns: int | None = None


class CrowdMovement(Analytic):
    """Motion-surge detector against each camera's own baseline (see the module docstring).

    Args:
        config: :class:`CrowdMovementConfig`.
        device: torch device of the batches.

    Per-camera state in a :class:`~vigie.detector.state.CameraStateBank`: previous
    smoothed grey frame ``(1, h, w)``, per-cell baseline ``(5, rows, cols)`` (fraction
    mean, variance, speed mean, variance, seconds of motion seen), camera-wide baseline
    ``(4,)`` and timers ``(3,)`` (seconds learned, seconds anomalous in a row, seconds of
    motion seen), all ``float32``; episodes in Python. :meth:`process` and :meth:`score`
    run under ``torch.inference_mode``.
    """

    kind = "crowd_movement"
    config_model = CrowdMovementConfig

    def __init__(self, config: CrowdMovementConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or CrowdMovementConfig()
        self.device = torch.device(device)
        self._bank: CameraStateBank | None = None
        self._clock = FrameClock()
        self._episodes: dict[str, _Episode] = {}
        self._next_id: dict[str, int] = {}

    def _features(self, gray: torch.Tensor, prev: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """Per-cell motion features ``(N, 2, rows, cols) float32``: moving fraction and speed.

        ``gray`` and ``prev`` are ``(N, 1, h, w)`` smoothed grey frames, ``dt`` ``(N,)`` seconds
        between them; the speed is a least-squares normal-flow magnitude in working pixels/s.
        """
        c = self.config
        it = gray - prev
        moving = (it.abs() > c.motion_threshold).float()
        mid = (gray + prev) * 0.5
        gx = F.pad(mid[..., :, 2:] - mid[..., :, :-2], (1, 1)) * 0.5
        gy = F.pad(mid[..., 2:, :] - mid[..., :-2, :], (0, 0, 1, 1)) * 0.5
        g2 = (gx * gx + gy * gy) * moving
        # normal-flow speed, least squares over the cell's moving pixels: sum|It||grad| / sum|grad|^2
        num_den = F.adaptive_avg_pool2d(torch.cat((moving, it.abs() * g2.sqrt(), g2), 1),
                                        (c.grid_rows, c.grid_cols))
        speed = num_den[:, 1:2] / (num_den[:, 2:3] + c.speed_support) / dt.view(-1, 1, 1, 1)
        return torch.cat((num_den[:, 0:1], speed), 1)

    def _step(self, batch: FrameBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update state; returns frame z ``(N,)``, cell z ``(N, rows, cols)``, anomalous cells (bool)."""
        c = self.config
        ids = batch.camera_ids
        gray = batch.gray
        h, w = gray.shape[-2:]
        if self._bank is None:
            f32 = torch.float32
            self._bank = CameraStateBank({"prev": ((1, h, w), f32), "cell": ((5, c.grid_rows, c.grid_cols), f32),
                                          "glob": ((4,), f32), "timers": ((3,), f32)}, device=self.device)
        elif self._bank.shape("prev") != (1, h, w):
            raise ValueError(f"working size changed from {self._bank.shape('prev')[1:]} to {(h, w)}")
        dts, restarts = self._clock.tick(ids, batch.time_ns, batch.fps)
        dt = torch.tensor(dts, dtype=torch.float32, device=self.device)
        idx = self._bank.index(ids)
        valid = ~(self._bank.new_mask(ids) | torch.tensor(restarts, device=self.device))
        st = self._bank.gather(ids, index=idx)

        smooth = box_sum3(gray).mul_(1.0 / 9.0)
        feats = self._features(smooth, st["prev"], dt)
        f, s = feats[:, 0], feats[:, 1]  # (N, R, C)
        cell, glob, timers = st["cell"], st["glob"], st["timers"]
        mean_f, var_f, mean_s, var_s, motion_c = cell.unbind(1)
        gmean_f, gvar_f, gmean_s, gvar_s = (g.view(-1, 1, 1) for g in glob.unbind(1))
        learned, run, motion_g = timers.unbind(1)
        has = (f >= c.min_moving_frac).float()

        # z-scores against the cell's baseline, shrunk towards the camera-wide one where the
        # cell has seen little motion (an area nobody crossed during learning is not anomalous
        # just because someone walks through it at a normal pace)
        wc = motion_c / (motion_c + c.prior_motion_s)
        z_f = (f - torch.lerp(gmean_f, mean_f, wc)) / (torch.lerp(gvar_f, var_f, wc) + c.sigma_floor**2).sqrt()
        z_s = (s - torch.lerp(gmean_s, mean_s, wc)) / (torch.lerp(gvar_s, var_s, wc) + c.speed_floor_px_s**2).sqrt()
        z_cell = torch.maximum(z_f, z_s * has)
        active = valid & (learned >= c.warmup_s)
        anom_cells = (z_cell > c.z_threshold) & active.view(-1, 1, 1)
        anom = anom_cells.flatten(1).sum(1) >= c.min_cells
        anom_cells &= anom.view(-1, 1, 1)

        run = torch.where(anom, run + dt, torch.zeros_like(run))  # seconds anomalous in a row
        # freeze once the anomaly has lasted min_duration_s (isolated outliers are still learned,
        # so the variance is not biased low), and learn again after max_freeze_s
        hold = (run > c.min_duration_s) & (run <= c.min_duration_s + c.max_freeze_s)
        upd = (valid & ~hold).float()
        a_tau = rates(dt, c.baseline_tau_s).view(-1) * upd
        a = torch.maximum(a_tau, dt / (learned + dt)) * upd  # cumulative average while learning starts
        a3 = a.view(-1, 1, 1)
        motion_c = motion_c * (1.0 - a_tau.view(-1, 1, 1)) + has * (dt * upd).view(-1, 1, 1)
        a_s = torch.maximum(a_tau.view(-1, 1, 1), dt.view(-1, 1, 1) / motion_c.clamp_min(1e-6)).clamp_max(1.0)
        a_s = a_s * has * upd.view(-1, 1, 1)  # a cell's speed is learned only while it moves
        d_f, d_s = f - mean_f, s - mean_s
        cell = torch.stack((mean_f + a3 * d_f, (1.0 - a3) * (var_f + a3 * d_f * d_f),
                            mean_s + a_s * d_s, (1.0 - a_s) * (var_s + a_s * d_s * d_s), motion_c), 1)
        # camera-wide baseline: over all cells for the fraction, over moving cells for the speed
        n_mov = has.sum((1, 2))
        any_mov = (n_mov > 0).float()
        motion_g = motion_g * (1.0 - a_tau) + dt * any_mov * upd
        a_g = any_mov * upd * torch.maximum(a_tau, dt / motion_g.clamp_min(1e-6)).clamp_max(1.0)
        gm_f, gm_s = gmean_f.view(-1), gmean_s.view(-1)
        pooled_f = ((f - gmean_f) ** 2).mean((1, 2))
        pooled_s = (has * (s - gmean_s) ** 2).sum((1, 2)) / n_mov.clamp_min(1.0)
        mean_mov_s = (has * s).sum((1, 2)) / n_mov.clamp_min(1.0)
        gv_f, gv_s = gvar_f.view(-1), gvar_s.view(-1)
        glob = torch.stack((gm_f + a * (f.mean((1, 2)) - gm_f), gv_f + a * (pooled_f - gv_f),
                            gm_s + a_g * (mean_mov_s - gm_s), gv_s + a_g * (pooled_s - gv_s)), 1)
        timers = torch.stack((learned + dt * upd, run, motion_g), 1)
        self._bank.scatter(ids, {"prev": smooth, "cell": cell, "glob": glob, "timers": timers}, index=idx)
        z_frame = torch.where(active, z_cell.flatten(1).amax(1), torch.full_like(dt, -1e3))
        return z_frame, z_cell, anom_cells

    @torch.inference_mode()
    def score(self, batch: FrameBatch) -> torch.Tensor:
        """Advance every camera by ``batch`` and return frame scores ``(N,) float32`` in [0, 1].

        Use it *instead of* :meth:`process` (both advance the state), e.g. for a
        frame-level ROC. Frames before warm-up, or right after a stream gap, score 0.
        """
        z_frame, _, _ = self._step(batch)
        return torch.sigmoid(z_frame - self.config.z_threshold)

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Advance every camera by ``batch`` and return crowd-movement detections.

        Returns:
            Detections (kind ``"crowd_movement"``) with one box (union of anomalous
            cells, original frame pixels), ``score`` = logistic of the frame z-score,
            ``attributes``: ``z``, ``duration_s``, ``cells``.
        """
        c = self.config
        z_frame, _, anom_cells = self._step(batch)
        self.last_scores = torch.sigmoid(z_frame - c.z_threshold).float().cpu()
        anom = anom_cells.flatten(1).any(1).tolist()
        z_list = z_frame.tolist()
        cells_cpu = anom_cells.cpu() if any(anom) else None
        out = []
        for i, cam in enumerate(batch.camera_ids):
            now = batch.time_ns[i]
            ep = self._episodes.setdefault(cam, _Episode())
            if not anom[i]:
                if ep.last_anom_ns is not None and now - ep.last_anom_ns > c.release_s * 1e9:
                    self._episodes[cam] = _Episode()
                continue
            if ep.last_anom_ns is not None and now - ep.last_anom_ns > c.release_s * 1e9:
                ep = self._episodes[cam] = _Episode()
            if ep.start_ns is None:
                ep.start_ns = now
            ep.last_anom_ns = now
            duration = (now - ep.start_ns) / 1e9
            if duration + 1e-9 < c.min_duration_s:
                continue
            if not ep.track_id:
                k = self._next_id.get(cam, 0) + 1
                self._next_id[cam] = k
                ep.track_id = f"{cam}/crowd/{k}"
            elif ep.last_emit_ns is not None and now - ep.last_emit_ns < c.repeat_s * 1e9:
                continue
            ep.last_emit_ns = now
            box, n_cells = self._cells_box(cells_cpu[i], batch.frame_sizes[i])
            z = float(z_list[i])
            out.append(Detection(index=i, kind=self.kind, score=1.0 / (1.0 + math.exp(-(z - c.z_threshold))),
                                 boxes=[box], track_id=ep.track_id,
                                 attributes={"z": z, "duration_s": duration, "cells": float(n_cells)}))
        return out

    def _cells_box(self, cells: torch.Tensor, frame_size: tuple[int, int]) -> tuple[Box, int]:
        """Union of anomalous cells ``(rows, cols) bool`` as a frame-pixel :class:`Box`."""
        c = self.config
        rows = cells.any(1).nonzero().flatten().tolist()
        cols = cells.any(0).nonzero().flatten().tolist()
        W, H = frame_size
        x0, x1 = (cols[0] * W) // c.grid_cols, -((-(cols[-1] + 1) * W) // c.grid_cols)
        y0, y1 = (rows[0] * H) // c.grid_rows, -((-(rows[-1] + 1) * H) // c.grid_rows)
        return Box(x0, y0, x1 - x0, y1 - y0), int(cells.sum())

    def forget(self, camera_id: str) -> None:
        """Drop the camera's baseline, previous frame and episode (track numbers keep counting)."""
        if self._bank is not None:
            self._bank.forget(camera_id)
        self._clock.forget(camera_id)
        self._episodes.pop(camera_id, None)
