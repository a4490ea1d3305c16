"""Crowd-movement analytic: motion far above what this camera usually sees.

Per frame, motion is the absolute difference of consecutive grey frames
(working size). Per cell of a ``grid_cols x grid_rows`` grid it gives two
features: the fraction of pixels whose difference exceeds
``motion_threshold`` and the mean difference (divided by the threshold, so
both are of order 1). Each camera learns its own baseline of each feature in
each cell: an exponential running mean and variance with time constant
``baseline_tau_s`` (a cumulative average during the first seconds), frozen
while an anomaly is active (up to ``max_freeze_s``, after which a lasting
change is learned). The anomaly score of a cell is its largest z-score
``(x - mean) / sqrt(var + sigma_floor^2)``; the frame's score is the largest
cell score through a logistic, ``1 / (1 + exp(-(z - z_threshold)))``, so 0.5
at the threshold.

A detection is raised when the frame stays anomalous (some cell above
``z_threshold``) for ``min_duration_s`` (gaps shorter than ``release_s`` do
not interrupt it). The episode keeps one ``track_id``; it emits on the frame
it is raised and then every ``repeat_s`` (0: every anomalous frame). The box is
the union of the anomalous cells, in original frame pixels.

This is the classic baseline-deviation approach to crowd anomaly (see e.g.
Mahadevan et al., "Anomaly Detection in Crowded Scenes", CVPR 2010, for the
UCSD benchmark it is tested on); it measures motion only and identifies no one.
"""

from __future__ import annotations

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
    warmup_s: float = Field(30.0, ge=0.0, le=86400.0, description=(
        "Seconds of baseline learning before the camera may raise anything."))
    z_threshold: float = Field(4.0, ge=0.5, le=100.0, description="z-score above which a cell is anomalous.")
    sigma_floor: float = Field(0.03, gt=0.0, le=1.0, description=(
        "Standard-deviation floor of the moving fraction, so quiet cells are not oversensitive."))
    speed_floor_px_s: float = Field(0.5, gt=0.0, le=1000.0, description=(
        "Standard-deviation floor of the cell speed, working pixels per second."))
    speed_support: float = Field(2e-4, gt=0.0, le=1.0, description=(
        "Regulariser of the speed estimate (mean squared gradient over the cell): cells with little "
        "textured motion read as slow."))
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
    grey frame ``(1, h, w)``, baseline mean and variance ``(2, rows, cols)``, seconds
    learned and seconds frozen ``(1,)``; episodes in Python.
    """

    kind = "crowd_movement"

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
            cells = (2, c.grid_rows, c.grid_cols)
            f32 = torch.float32
            self._bank = CameraStateBank({"prev": ((1, h, w), f32), "mean": (cells, f32), "var": (cells, f32),
                                          "learned": ((1,), f32), "frozen": ((1,), f32)}, device=self.device)
        elif self._bank.shape("prev") != (1, h, w):
            raise ValueError(f"working size changed from {self._bank.shape('prev')[1:]} to {(h, w)}")
        dts, restarts = self._clock.tick(ids, batch.capture_ns, batch.fps)
        dt = torch.tensor(dts, dtype=torch.float32, device=self.device)
        idx = self._bank.index(ids)
        valid = ~(self._bank.new_mask(ids) | torch.tensor(restarts, device=self.device))
        st = self._bank.gather(ids, index=idx)

        smooth = box_sum3(gray).mul_(1.0 / 9.0)
        feats = self._features(smooth, st["prev"], dt)
        mean, var = st["mean"], st["var"]
        floor = torch.tensor([c.sigma_floor ** 2, c.speed_floor_px_s ** 2], device=self.device).view(1, 2, 1, 1)
        z_cell = ((feats - mean) / (var + floor).sqrt()).amax(1)  # (N, R, C)
        learned, frozen = st["learned"][:, 0], st["frozen"][:, 0]
        active = valid & (learned >= c.warmup_s)
        anom_cells = (z_cell > c.z_threshold) & active.view(-1, 1, 1)
        anom = anom_cells.flatten(1).any(1)

        a = torch.maximum(rates(dt, c.baseline_tau_s).view(-1), dt / (learned + dt))
        run = torch.where(anom, frozen + dt, torch.zeros_like(frozen))  # seconds anomalous in a row
        # freeze once the anomaly has lasted min_duration_s (isolated outliers are still learned,
        # so the variance is not biased low), and learn again after max_freeze_s
        hold = (run > c.min_duration_s) & (run <= c.min_duration_s + c.max_freeze_s)
        upd = (valid & ~hold).float()
        a = (a * upd).view(-1, 1, 1, 1)
        delta = feats - mean
        st["mean"] = mean + a * delta
        st["var"] = (1.0 - a) * (var + a * delta * delta)
        st["learned"] = (learned + dt * upd).view(-1, 1)
        st["frozen"] = run.view(-1, 1)
        st["prev"] = smooth
        self._bank.scatter(ids, st, index=idx)
        z_frame = torch.where(active, z_cell.flatten(1).amax(1), torch.full_like(dt, -1e3))
        return z_frame, z_cell, anom_cells

    def score(self, batch: FrameBatch) -> torch.Tensor:
        """Advance every camera by ``batch`` and return frame scores ``(N,) float32`` in [0, 1].

        Use it *instead of* :meth:`process` (both advance the state), e.g. for a
        frame-level ROC. Frames before warm-up, or right after a stream gap, score 0.
        """
        z_frame, _, _ = self._step(batch)
        return torch.sigmoid(z_frame - self.config.z_threshold)

    def process(self, batch: FrameBatch) -> list[Detection]:
        """Advance every camera by ``batch`` and return crowd-movement detections.

        Returns:
            Detections (kind ``"crowd_movement"``) with one box (union of anomalous
            cells, original frame pixels), ``score`` = logistic of the frame z-score,
            ``attributes``: ``z``, ``duration_s``, ``cells``.
        """
        c = self.config
        z_frame, _, anom_cells = self._step(batch)
        anom = anom_cells.flatten(1).any(1).tolist()
        z_list = z_frame.tolist()
        cells_cpu = anom_cells.cpu() if any(anom) else None
        out = []
        for i, cam in enumerate(batch.camera_ids):
            now = batch.capture_ns[i]
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
            out.append(Detection(index=i, kind=self.kind, score=float(torch.sigmoid(torch.tensor(
                z_list[i] - c.z_threshold))), boxes=[box], track_id=ep.track_id,
                attributes={"z": float(z_list[i]), "duration_s": duration, "cells": float(n_cells)}))
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
