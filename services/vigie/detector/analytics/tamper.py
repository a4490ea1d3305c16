"""Camera-tampering analytic: the camera is blinded, defocused or moved.

Each camera is compared with its own *reference*, learned slowly from its normal
footage (exponential running means with time constant ``reference_tau_s``, a
cumulative average while learning starts, so ``warmup_s`` of footage suffice to
begin). Per frame, on the grey image at the working size (statistics of the
histogram and the edges on its half-size version):

* **blinded** (lens covered, signal lost, dazzled): the grey-level histogram
  entropy collapses (below ``blind_entropy_ratio`` of the reference's) *and*
  either the spatial standard deviation collapses (below ``blind_std_ratio`` of
  the reference's) or the mean luminance is extreme (below ``dark_level`` or
  above ``bright_level``) -- the entropy criterion of Ribnick et al. and the
  luminance/variance checks of common video-management systems;
* **defocused** (lens defocused or smeared): the high-frequency energy (RMS of
  the image minus its 3x3 mean, a discrete Laplacian) drops below
  ``defocus_ratio`` of the reference in at least ``defocus_fraction`` of the
  textured grid cells -- Ribnick's and Aksay's loss of high-frequency content,
  measured per cell so that a smooth object passing close to the lens, which
  hides only part of the frame, is not a defocus. The reference is first scaled
  by the global illumination gain (median over cells of the ratio of cell mean
  grey levels), so a cloud or a dimmed light is not a loss of detail;
* **moved** (camera turned, pushed or zoomed): the normalised cross-correlation
  between the current signed gradients (horizontal and vertical central
  differences of the half-size image, 3x3-smoothed) and the reference's running
  mean of them falls below ``moved_ncc`` in at least ``moved_fraction`` of the
  textured cells -- the edge-map comparison of Ribnick et al. and Aksay et al.
  Ordinary foreground, even a person standing close to the camera, covers only
  part of the frame: the other cells keep correlating. Moving objects average
  out of the reference, static edges stay; signed gradients decorrelate under
  a shift even where a gradient *magnitude* map (repetitive facades, lanes)
  would still match. A jitter of a few pixels (about 2% of the width) is tolerated.

Modes are exclusive per frame, by priority blinded > defocused > moved (a
blurred or black frame also loses its edge correlation). A mode must persist
``min_duration_s`` (gaps shorter than ``release_s`` do not interrupt it) before
a detection is raised. The reference freezes on every frame that shows a
tamper condition; a defocus or move that lasts ``relearn_after_s`` becomes the
new reference (a camera that was deliberately re-aimed), a blinding never does.

References: E. Ribnick, S. Atev, O. Masoud, N. Papanikolopoulos, R. Voyles,
"Real-time detection of camera tampering", IEEE AVSS 2006; A. Aksay, A. Temizel,
A. E. Cetin, "Camera tamper detection using wavelet analysis for video
surveillance", IEEE AVSS 2007. Only global image statistics are used: nobody is
identified.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vigie.detector.analytics.background import box_sum3, rates
from vigie.detector.analytics.base import Analytic, Box, Detection, FrameBatch
from vigie.detector.analytics.episodes import Episodes
from vigie.detector.state import CameraStateBank, FrameClock

#: Mode codes emitted in ``attributes["mode"]`` and their names (used in track ids).
MODES: dict[int, str] = {1: "blinded", 2: "defocused", 3: "moved"}
_BINS = 32


class TamperConfig(BaseModel):
    """Settings of :class:`Tamper` (times in seconds, intensities in [0, 1])."""

    model_config = ConfigDict(extra="forbid")

    reference_tau_s: float = Field(120.0, ge=5.0, le=86400.0, description=(
        "Time constant of each camera's reference (edges, sharpness, histogram statistics), seconds."))
    warmup_s: float = Field(5.0, ge=0.5, le=3600.0, description=(
        "Seconds of reference learning before the camera may raise anything."))
    min_duration_s: float = Field(1.0, ge=0.0, le=600.0, description=(
        "Seconds a tamper condition must persist before it is raised."))
    release_s: float = Field(0.5, ge=0.0, le=60.0, description=(
        "Gaps in a condition shorter than this, seconds, do not end it."))
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit an active condition every this many seconds; 0 emits every tampered frame."))
    relearn_after_s: float = Field(300.0, ge=10.0, le=86400.0, description=(
        "A defocus or move lasting this long, seconds, becomes the new reference (blinding never does)."))
    grid_cols: int = Field(6, ge=1, le=32, description="Grid columns of the per-cell sharpness and edge tests.")
    grid_rows: int = Field(4, ge=1, le=32, description="Grid rows of the per-cell sharpness and edge tests.")
    min_cells: int = Field(4, ge=1, le=1024, description=(
        "Textured cells needed in the reference to judge defocus or movement at all."))
    blind_entropy_ratio: float = Field(0.5, gt=0.0, lt=1.0, description=(
        "Blinded needs the 32-bin grey histogram entropy below this fraction of the reference's, and "
        "a flat frame (blind_std_ratio) or an extreme mean grey level (dark_level, bright_level)."))
    blind_std_ratio: float = Field(0.25, gt=0.0, lt=1.0, description=(
        "Flat frame: grey standard deviation below this fraction of the reference's."))
    dark_level: float = Field(0.08, ge=0.0, le=0.5, description="Extreme luminance: mean grey level below this.")
    bright_level: float = Field(0.85, ge=0.5, le=1.0, description="Extreme luminance: mean grey level above this.")
    defocus_ratio: float = Field(0.6, gt=0.0, lt=1.0, description=(
        "A cell is blurred when its high-frequency RMS falls below this fraction of the reference's "
        "(after illumination-gain compensation)."))
    defocus_fraction: float = Field(0.85, gt=0.0, le=1.0, description=(
        "Fraction of textured cells that must be blurred for the frame to be defocused."))
    texture_floor: float = Field(0.004, gt=0.0, le=1.0, description=(
        "Reference high-frequency RMS (grey level) below which a cell is too smooth to judge."))
    moved_ncc: float = Field(0.4, gt=-1.0, lt=1.0, description=(
        "A cell has changed when its signed gradients correlate less than this with the reference's."))
    moved_fraction: float = Field(0.8, gt=0.0, le=1.0, description=(
        "Fraction of textured cells that must have changed for the frame to show a moved camera."))
    edge_floor: float = Field(1e-4, gt=0.0, le=1.0, description=(
        "Variance of the reference signed gradients in a cell (both components summed) below which "
        "the cell is too smooth to judge a move."))

    @model_validator(mode="after")
    def _check(self) -> "TamperConfig":
        if self.min_cells > self.grid_cols * self.grid_rows:
            raise ValueError("min_cells must not exceed grid_cols * grid_rows")
        if self.reference_tau_s < self.warmup_s:
            raise ValueError("reference_tau_s must be >= warmup_s")
        return self


def _quantiles(x: torch.Tensor, valid: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row quantiles (linear interpolation) of ``x (N, M, K)`` over its ``valid`` entries.

    ``q (M,)`` gives the quantile level of each of the ``M`` rows; returns ``(N, M)``, NaN
    where a row has no valid entry. One sort for all rows (faster than ``nanquantile``).
    """
    xs = torch.where(valid, x, torch.full_like(x, float("inf"))).sort(dim=-1).values
    n = valid.sum(-1)
    pos = q.view(1, -1) * (n - 1).clamp_min(0)
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, (n - 1).clamp_min(0))
    v_lo, v_hi = xs.gather(-1, lo.unsqueeze(-1)).squeeze(-1), xs.gather(-1, hi.unsqueeze(-1)).squeeze(-1)
    out = v_lo + (pos - lo) * (v_hi - v_lo).nan_to_num(0.0, posinf=0.0, neginf=0.0)
    return torch.where(n > 0, out, torch.full_like(out, float("nan")))


def _pool_matrix(n: int, k: int, device: torch.device) -> torch.Tensor:
    """``(k, n) float32`` matrix averaging ``n`` samples into ``k`` bins (``adaptive_avg_pool`` bins)."""
    m = torch.zeros((k, n), dtype=torch.float32)
    for i in range(k):
        a, b = (i * n) // k, -((-(i + 1) * n) // k)
        m[i, a:b] = 1.0 / (b - a)
    return m.to(device)


class Tamper(Analytic):
    """Camera-tampering detector over batches of cameras (see the module docstring).

    Args:
        config: :class:`TamperConfig`.
        device: torch device of the batches.

    Per-camera state in a :class:`~vigie.detector.state.CameraStateBank`: reference signed
    gradients ``(2, h/2, w/2)``, reference per-cell high-frequency RMS and mean grey level
    ``(2, rows, cols)``, reference entropy, standard deviation and mean ``(3,)``, timers
    ``(2,)`` (seconds learned, seconds tampered in a row), all ``float32``; episodes in
    Python. :meth:`process` runs under ``torch.inference_mode``.
    """

    kind = "tamper"
    config_model = TamperConfig

    def __init__(self, config: TamperConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or TamperConfig()
        self.device = torch.device(device)
        self._bank: CameraStateBank | None = None
        self._clock = FrameClock()
        self._pools: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        c = self.config
        # track ids "<camera>/tamper/<mode>-<n>", numbered per camera and mode; 1 ns of slack on release_s
        self._episodes = Episodes("tamper", c.repeat_s, c.release_s, min_duration_s=c.min_duration_s,
                                  template="{camera}/{prefix}/{sub}-{n}", ids_per_sub=True, release_slack_ns=1)
        self._levels = torch.tensor([c.defocus_fraction, c.moved_fraction], device=self.device)
        self._median = torch.tensor([0.5], device=self.device)

    def _cells(self, x: torch.Tensor) -> torch.Tensor:
        """Cell means of ``x (N, C, h, w)`` over the grid: ``(N, C, rows, cols)`` (two small matmuls:
        much faster on CPU than adaptive pooling)."""
        h, w = x.shape[-2:]
        if (h, w) not in self._pools:
            c = self.config
            self._pools[(h, w)] = (_pool_matrix(h, c.grid_rows, x.device),
                                   _pool_matrix(w, c.grid_cols, x.device).T.contiguous())
        rows, cols = self._pools[(h, w)]
        return torch.matmul(torch.matmul(rows, x), cols)

    def _features(self, gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame features of ``gray (N, 1, h, w)`` (``h``, ``w`` even).

        Returns:
            ``glob (N, 3)`` (32-bin histogram entropy in bits, standard deviation, mean of the
            half-size image), ``cells (N, 2, rows, cols)`` per-cell RMS of the 3x3 high-pass
            image (full working size) and mean grey level, and ``edges (N, 2, h/2, w/2)`` the
            3x3-smoothed horizontal and vertical central differences of the half-size image
            (signed gradients); all ``float32``.
        """
        n, _, h, w = gray.shape
        pairs = gray.reshape(n, 1, h // 2, 2, w)
        rows = pairs[:, :, :, 0] + pairs[:, :, :, 1]
        half = (rows[..., 0::2] + rows[..., 1::2]).mul_(0.25)
        flat = half.flatten(1)
        bins = (flat * _BINS).long().clamp_(0, _BINS - 1)
        bins += torch.arange(n, device=gray.device).view(-1, 1) * _BINS
        p = torch.bincount(bins.flatten(), minlength=n * _BINS).view(n, _BINS).float() / flat.shape[1]
        entropy = -(p * torch.log2(p.clamp_min(1e-12))).sum(1)
        mean = flat.mean(1)
        std = ((flat * flat).mean(1) - mean * mean).clamp_min(0.0).sqrt()
        # fine detail: the image minus its 3x3 mean (a discrete Laplacian), inner pixels only
        r = gray[..., :-2] + gray[..., 1:-1] + gray[..., 2:]
        hp = gray[..., 1:-1, 1:-1] - (r[..., :-2, :] + r[..., 1:-1, :] + r[..., 2:, :]).mul_(1.0 / 9.0)
        cells = torch.cat((self._cells(hp.square_()).sqrt_(), self._cells(half)), 1)
        gx = F.pad(half[..., :, 2:] - half[..., :, :-2], (1, 1, 0, 0), mode="replicate")
        gy = F.pad(half[..., 2:, :] - half[..., :-2, :], (0, 0, 1, 1), mode="replicate")
        edges = box_sum3(torch.cat((gx, gy), 1)).mul_(1.0 / 9.0)
        return torch.stack((entropy, std, mean), 1), cells, edges

    def _cells_ncc(self, edges: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell NCC of the signed gradients ``edges`` with ``ref`` (both ``(N, 2, h2, w2)``,
        pooled over the two components) and the reference's per-cell variance; both ``(N, rows * cols)``."""
        n = edges.shape[0]
        m = self._cells(torch.cat((edges, ref, edges * edges, ref * ref, edges * ref), 1)).view(n, 5, 2, -1)
        mx, my, mxx, myy, mxy = m.unbind(1)  # each (N, 2, cells): per gradient component
        vx = (mxx - mx * mx).sum(1).clamp_min(0.0)
        vy = (myy - my * my).sum(1).clamp_min(0.0)
        ncc = (mxy - mx * my).sum(1) / torch.sqrt(vx * vy + 1e-12)
        return ncc, vy

    def _step(self, batch: FrameBatch) -> dict[str, torch.Tensor]:
        """Update every camera's reference with ``batch``; returns per-frame ``(N,)`` tensors:
        ``mode`` (int64, 0 none, else a :data:`MODES` code), ``score`` (the largest of the
        three mode scores, in [0, 1]), ``mode_score`` (the score of ``mode``), ``value`` (the
        statistic of ``mode``) and the raw statistics ``entropy_ratio`` (to the reference),
        ``sharpness_ratio`` (``defocus_fraction``-quantile of the cells' gain-compensated
        high-frequency ratios) and ``edge_ncc`` (``moved_fraction``-quantile of the cells'
        edge correlations); the last two are NaN when too few cells are textured."""
        c = self.config
        ids = batch.camera_ids
        gray = batch.gray
        h, w = gray.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"the working size must be even, got {w}x{h}")
        f32 = torch.float32
        if self._bank is None:
            self._bank = CameraStateBank({"ref_edges": ((2, h // 2, w // 2), f32),
                                          "ref_cells": ((2, c.grid_rows, c.grid_cols), f32),
                                          "ref_glob": ((3,), f32), "timers": ((2,), f32)}, device=self.device)
        elif self._bank.shape("ref_edges") != (2, h // 2, w // 2):
            raise ValueError(f"working size changed to {w}x{h}")
        dts, _ = self._clock.tick(ids, batch.time_ns, batch.fps)
        dt = torch.tensor(dts, dtype=f32, device=self.device)
        idx = self._bank.index(ids)
        st = self._bank.gather(ids, index=idx)
        learned, tampered = st["timers"].unbind(1)
        active = learned >= c.warmup_s

        glob, cells_now, edges = self._features(gray)
        entropy, std, mean = glob.unbind(1)
        r_entropy, r_std, _ = st["ref_glob"].unbind(1)
        # blinded: entropy collapse and (flat frame or extreme luminance); margins in log-ratio units
        m_collapse = torch.log((c.blind_entropy_ratio * r_entropy + 1e-3) / (entropy + 1e-3)) / 0.1
        m_flat = torch.log((c.blind_std_ratio * r_std + 1e-4) / (std + 1e-4)) / 0.1
        m_extreme = torch.maximum(c.dark_level - mean, mean - c.bright_level) / 0.02
        s_blind = torch.minimum(torch.sigmoid(m_collapse), torch.sigmoid(torch.maximum(m_flat, m_extreme)))
        # per-cell ratios, reduced by quantiles in one sort: illumination gain (median ratio of
        # cell means: robust to foreground, blind to blur), high-frequency ratio, edge correlation
        hp, cmean = cells_now.flatten(2).unbind(1)
        ref_hp, ref_mean = st["ref_cells"].flatten(2).unbind(1)
        ncc, ref_var = self._cells_ncc(edges, st["ref_edges"])
        textured, edged = ref_hp > c.texture_floor, ref_var > c.edge_floor
        gain_q = _quantiles((cmean / ref_mean.clamp_min(1e-3)).unsqueeze(1), (ref_mean > 0.02).unsqueeze(1),
                            self._median)[:, 0]
        gain = gain_q.nan_to_num(1.0).clamp(0.25, 4.0)
        q = _quantiles(torch.stack((hp / (ref_hp * gain.view(-1, 1)).clamp_min(1e-6), ncc), 1),
                       torch.stack((textured, edged), 1), self._levels)
        sharp, corr = q.unbind(1)
        judged = (textured.sum(1) >= c.min_cells, edged.sum(1) >= c.min_cells)
        # defocused: most textured cells lost their high frequencies
        s_defocus = torch.sigmoid(torch.log(c.defocus_ratio / sharp.nan_to_num(1.0).clamp_min(1e-6)) / 0.1)
        # moved: most textured cells' edges no longer correlate with the reference's
        s_moved = torch.sigmoid((c.moved_ncc - corr.nan_to_num(1.0)) / 0.05)
        zero = torch.zeros_like(dt)
        scores = torch.stack((torch.where(active, s_blind, zero), torch.where(active & judged[0], s_defocus, zero),
                              torch.where(active & judged[1], s_moved, zero)), 1)
        hit = scores > 0.5
        any_hit = hit.any(1)
        # the first true mode by priority (blinded > defocused > moved), 0 when none
        mode = torch.where(hit[:, 0], 1, torch.where(hit[:, 1], 2, torch.where(hit[:, 2], 3, 0)))

        # reference update, frozen on tampered frames; a long defocus/move is relearned
        tampered = torch.where(any_hit, tampered + dt, zero)
        relearn = (tampered > c.relearn_after_s) & (mode != 1)
        learned = torch.where(relearn, zero, learned)
        tampered = torch.where(relearn, zero, tampered)
        upd = (~any_hit | relearn).to(f32)
        a = torch.maximum(rates(dt, c.reference_tau_s).view(-1), dt / (learned + dt)) * upd
        ref_edges = torch.lerp(st["ref_edges"], edges, a.view(-1, 1, 1, 1))
        ref_cells = torch.lerp(st["ref_cells"], cells_now, a.view(-1, 1, 1, 1))
        ref_glob = torch.lerp(st["ref_glob"], glob, a.view(-1, 1))
        timers = torch.stack((learned + dt * upd, tampered), 1)
        self._bank.scatter(ids, {"ref_edges": ref_edges, "ref_cells": ref_cells, "ref_glob": ref_glob,
                                 "timers": timers}, index=idx)

        stats = torch.stack((entropy / r_entropy.clamp_min(1e-6), sharp, corr), 1)
        pick = (mode - 1).clamp_min(0).view(-1, 1)
        return {"mode": mode, "score": scores.amax(1), "mode_score": scores.gather(1, pick).view(-1),
                "value": stats.gather(1, pick).view(-1), "entropy_ratio": stats[:, 0], "sharpness_ratio": sharp,
                "edge_ncc": corr}

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Advance every camera by ``batch`` and return tamper detections.

        Returns:
            Detections (kind ``"tamper"``) whose box is the whole frame, ``score`` the frame's
            score for its mode, ``track_id`` ``f"{camera}/tamper/{mode_name}-{n}"`` and
            ``attributes``: ``mode`` (1 blinded, 2 defocused, 3 moved), ``duration_s`` and
            ``value`` (entropy ratio, sharpness ratio or edge correlation to the reference).
            ``last_scores`` holds each frame's largest mode score.

        Raises:
            ValueError: the working size is odd, or differs from the first batch's.
        """
        out = self._step(batch)
        self.last_scores = out["score"].to("cpu", torch.float32)
        modes = out["mode"].tolist()
        mode_scores = out["mode_score"].tolist()
        values = out["value"].tolist()
        dets = []
        for i, cam in enumerate(batch.camera_ids):
            now = batch.time_ns[i]
            for code, name in MODES.items():
                emit = self._episodes.update(cam, now, modes[i] == code, name)
                if emit is None:
                    continue
                W, H = batch.frame_sizes[i]
                value = values[i]
                dets.append(Detection(index=i, kind=self.kind, score=float(mode_scores[i]), boxes=[Box(0, 0, W, H)],
                                      track_id=emit.track_id, attributes={
                                          "mode": float(code), "duration_s": emit.duration_s,
                                          "value": float(value) if math.isfinite(value) else 0.0}))
        return dets

    def forget(self, camera_id: str) -> None:
        """Drop the camera's reference and episodes (track numbers keep counting)."""
        if self._bank is not None:
            self._bank.forget(camera_id)
        self._clock.forget(camera_id)
        self._episodes.forget(camera_id)
