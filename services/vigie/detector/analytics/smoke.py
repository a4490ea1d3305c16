"""Smoke analytic: grey regions that veil the background, keep drifting and persist.

Method in the spirit of B. U. Töreyin, Y. Dedeoğlu, A. E. Çetin, "Wavelet based
real-time smoke detection in video", EUSIPCO 2005: smoke is semi-transparent, so
where it drifts over the scene the edges of the background lose sharpness (their
high-frequency energy drops) while the colour turns towards grey; smoke also keeps
moving, slowly, at the same place. Smoke is a large-scale phenomenon, so it is
analysed per cell of a grid of half the working size (2x2 averages), batched in torch:

1. **Background**: running averages of the luminance and of the chroma (BT.601
   ``sqrt(Cb^2 + Cr^2)``), time constant ``background_tau_s``, updated only where the
   frame differs from it by less than ``foreground_min`` (cars and people leave no
   ghost); the luminance is compared after a global gain correction (a cloud or an
   exposure change does not count).
2. **Change**: the local (5x5) mean luminance differs from the background by at least
   ``diff_min``.
3. **Soft**, one of two regimes:

   * *veil* (the paper's "edges lose their sharpness", measured with local 5x5
     statistics instead of wavelet sub-bands): smoke of opacity ``a`` turns a pixel
     into ``(1 - a) B + a S``, so where the background is textured (local standard
     deviation at least ``texture_min``) the frame keeps the background's pattern
     (local correlation at least ``correlation_min``) at a reduced contrast
     (standard-deviation ratio between ``contrast_min`` and ``contrast_max``); an
     opaque object passing in front replaces the pattern instead;
   * *churn* (a smoke body over a flat background such as the sky): the frame is soft
     (gradient energy at most ``soft_max``) and no frame-to-frame step in the last
     ``window_s`` (a decaying peak) exceeded ``jump_max``: smoke drifts, cars and
     people jump.
4. **Grey**: the chroma is at most ``chroma_max`` and not above the background's plus
   ``chroma_tolerance`` (smoke desaturates what it covers). In a *colourless* frame
   (99th percentile of the chroma at most ``colourless_max``: a greyscale camera, IR
   night mode) every pixel is grey, so this cue says nothing; there only the veil
   regime counts (the churn regime would take any soft mover for smoke: on UCSD Ped2,
   a greyscale walkway, pedestrians raised smoke ~2 s after a warm-up).
5. **Activity**: smoke keeps moving, so the average absolute frame-to-frame luminance
   change (time constant ``window_s``) is at least ``activity_min`` and at least
   ``noise_factor`` times the frame's median (each camera's noise and compression floor);
   a grey object that stops is static.
6. **Persistence**: an evidence counter in seconds rises by ``dt`` while a candidate
   covers the cell and falls by ``decay * dt`` otherwise.

Cells whose evidence reached ``min_duration_s`` are confirmed; on the CPU, for the
frames with enough of them, candidates are grouped into connected regions (pieces up
to 2 cells apart joined) and a region whose confirmed cells cover at least
``min_area_frac`` of the frame is a smoke region. A camera with smoke regions has a
smoke *episode* (one ``track_id``, a detection when raised and every ``repeat_s``,
ended after ``release_s`` without smoke). Not modelled: the upward drift of smoke
(a grey, softly moving object that lingers, e.g. a person in a plain grey shirt swaying
in front of a white wall, comes closest to a false alarm). Only brightness, colour and
texture are analysed; nobody is identified.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from vigie.detector.analytics.background import accrue, box_sum3, dilate, rates
from vigie.detector.analytics.base import Analytic, Detection, FrameBatch
from vigie.detector.analytics.episodes import Episodes
from vigie.detector.analytics.firelib import chroma, frame_box, regions
from vigie.detector.analytics.zones import Zone, ZoneMasks
from vigie.detector.state import CameraStateBank, FrameClock


class SmokeConfig(BaseModel):
    """Settings of :class:`Smoke` (times in seconds, intensities in [0, 1])."""

    model_config = ConfigDict(extra="forbid")

    background_tau_s: float = Field(20.0, ge=1.0, le=3600.0, description=(
        "Time constant of the background (luminance and chroma running averages), seconds."))
    foreground_min: float = Field(0.1, gt=0.0, le=1.0, description=(
        "Luminance difference from the background above which a pixel is not learned into it."))
    window_s: float = Field(1.0, ge=0.1, le=30.0, description=(
        "Time constant of the per-pixel activity average (frame-to-frame change), seconds."))
    texture_min: float = Field(0.02, gt=0.0, le=1.0, description=(
        "Smallest local standard deviation of the background luminance (5x5) where a veil can be "
        "measured; flat areas (open sky, plain walls) are not analysed."))
    contrast_max: float = Field(0.7, gt=0.0, lt=1.0, description=(
        "A veiled pixel keeps at most this fraction of the background's local contrast ..."))
    contrast_min: float = Field(0.15, ge=0.0, lt=1.0, description=(
        "... and at least this fraction (below, the background is hidden: an opaque object)."))
    correlation_min: float = Field(0.6, ge=-1.0, le=1.0, description=(
        "Smallest local correlation (5x5) between frame and background: the background's pattern "
        "must still show through the veil."))
    diff_min: float = Field(0.02, ge=0.0, lt=1.0, description=(
        "Smallest local mean luminance shift from the gain-corrected background (the veil's own grey)."))
    noise_factor: float = Field(2.5, ge=0.0, le=100.0, description=(
        "The activity must also be at least this multiple of the frame's median activity (noise floor)."))
    chroma_max: float = Field(0.05, gt=0.0, le=1.0, description=(
        "Largest chroma (sqrt(Cb^2 + Cr^2), BT.601, [0, 1] scale) of a grey, smoke-coloured pixel."))
    chroma_tolerance: float = Field(0.005, ge=0.0, le=1.0, description=(
        "A smoke pixel's chroma may exceed its background's by at most this much (smoke desaturates)."))
    colourless_max: float = Field(0.02, ge=0.0, le=1.0, description=(
        "A frame whose 99th percentile of chroma is at most this is colourless (greyscale camera, IR night "
        "mode): every pixel is grey there, so grey is no evidence and only the veil regime counts."))
    soft_max: float = Field(0.02, ge=0.0, le=2.0, description=(
        "Churning smoke body: largest local gradient energy (3x3 mean of |dI/dx| + |dI/dy|, half "
        "central differences) ..."))
    jump_max: float = Field(0.08, gt=0.0, le=1.0, description=(
        "... and largest frame-to-frame luminance step over the last window_s (decaying peak): "
        "smoke drifts, cars and people jump."))
    activity_min: float = Field(0.005, ge=0.0, le=1.0, description=(
        "Smallest average absolute frame-to-frame luminance change: smoke keeps moving."))
    min_duration_s: float = Field(3.0, ge=0.0, le=600.0, description=(
        "Seconds a pixel must stay a smoke candidate before smoke is raised there."))
    decay: float = Field(1.0, ge=0.1, le=20.0, description=(
        "Evidence lost per second without candidate, relative to the rate at which it is gained."))
    hold_s: float = Field(2.0, ge=0.0, le=60.0, description=(
        "Evidence kept above min_duration_s, so confirmed smoke survives short gaps."))
    min_area_frac: float = Field(0.003, gt=0.0, le=1.0, description=(
        "Smallest confirmed area of a smoke region, as a fraction of the frame."))
    release_s: float = Field(5.0, ge=0.0, le=600.0, description=(
        "An episode ends after this many seconds without a smoke region."))
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit an active episode every this many seconds; 0 emits every frame with smoke."))
    zones: list[Zone] = Field([], max_length=64, description=(
        "Where smoke is looked for (polygons in frame pixels); empty: the whole frame."))


def _box5(x: torch.Tensor) -> torch.Tensor:
    """5x5 triangular-weighted local mean (two 3x3 box sums) of ``x (N, C, h, w)``, zero padded."""
    return box_sum3(box_sum3(x)).mul_(1.0 / 81.0)


def gradient_energy(gray: torch.Tensor) -> torch.Tensor:
    """Local sharpness ``(N, 1, h, w)`` of ``gray (N, 1, h, w)``: 3x3 mean of ``|dI/dx| + |dI/dy|``
    with half central differences (a unit step reads 1 in total)."""
    gx = F.pad((gray[..., :, 2:] - gray[..., :, :-2]).abs_(), (1, 1))
    gy = F.pad((gray[..., 2:, :] - gray[..., :-2, :]).abs_(), (0, 0, 1, 1))
    return box_sum3(gx.add_(gy)).mul_(0.5 / 9.0)


def veil_stats(gray: torch.Tensor, background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local comparison of a frame with its background, both ``(N, 1, h, w)`` luminance.

    Returns ``(N, 1, h, w)`` maps: the background's local standard deviation, the ratio
    of the frame's to the background's standard deviation, and their local correlation
    (5x5 triangular window).
    """
    m = _box5(torch.cat((gray, background, gray * gray, background * background, gray * background), 1))
    mi, mb = m[:, 0:1], m[:, 1:2]
    var_i = (m[:, 2:3] - mi * mi).clamp_min_(0.0)
    var_b = (m[:, 3:4] - mb * mb).clamp_min_(0.0)
    cov = m[:, 4:5] - mi * mb
    sd_b = var_b.sqrt()
    ratio = var_i.sqrt() / sd_b.clamp_min(1e-4)
    corr = cov / (var_i * var_b).sqrt_().clamp_min_(1e-8)
    return sd_b, ratio, corr


class Smoke(Analytic):
    """Smoke detector over batches of cameras (see the module docstring).

    Args:
        config: :class:`SmokeConfig`.
        device: torch device of the batches.

    Per-camera state in a :class:`~vigie.detector.state.CameraStateBank`, all
    ``float32``: maps ``(6, h/2, w/2)`` (background luminance and chroma, previous
    luminance, activity average, evidence in seconds, decaying peak step) and timers
    ``(1,)`` (seconds of averaging); episodes in Python.
    :meth:`process` runs under ``torch.inference_mode``.
    """

    kind = "smoke"
    relearns_on_lighting = "brighter"
    config_model = SmokeConfig

    def __init__(self, config: SmokeConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or SmokeConfig()
        self.device = torch.device(device)
        self._bank: CameraStateBank | None = None
        self._clock = FrameClock()
        self._zones = ZoneMasks(self.config.zones, (160, 120), self.device) if self.config.zones else None
        self._episodes = Episodes("smoke", self.config.repeat_s, self.config.release_s)
        self.last_scores = None

    def _maps(self, batch: FrameBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update the state; returns candidate and confirmed masks ``(N, 1, h/2, w/2) bool`` and
        the evidence ``(N, 1, h/2, w/2) float32`` (seconds), on the half-size grid."""
        c = self.config
        ids = batch.camera_ids
        # smoke is a large-scale phenomenon: analysed on a grid of half the working size
        gray = F.avg_pool2d(batch.gray, 2)
        rgb = F.avg_pool2d(batch.rgb, 2)
        h, w = gray.shape[-2:]
        if self._bank is None:
            self._bank = CameraStateBank({"maps": ((6, h, w), torch.float32), "timers": ((1,), torch.float32)},
                                         device=self.device)
        elif self._bank.shape("maps")[1:] != (h, w):
            raise ValueError(f"working size changed from {self._bank.shape('maps')[1:]} to {(h, w)}")
        dts, restarts = self._clock.tick(ids, batch.time_ns, batch.fps)
        dt = torch.tensor(dts, dtype=torch.float32, device=self.device)
        valid = ~torch.tensor(restarts, device=self.device)
        new = self._bank.new_mask(ids).view(-1, 1, 1, 1)
        idx = self._bank.index(ids)
        st = self._bank.gather(ids, index=idx)
        # background luminance, background chroma, previous luminance, activity, evidence (s), peak step
        maps, learned = st["maps"], st["timers"][:, 0]

        cb, cr = chroma(rgb)
        chr_ = (cb * cb).add_(cr * cr).sqrt_()
        if bool(new.any()):  # a camera's first frame is its background
            maps[:, 0:3] = torch.where(new, torch.cat((gray, chr_, gray), 1), maps[:, 0:3])
        bg = maps[:, 0:1]
        gain = gray.mean((1, 2, 3), keepdim=True) / bg.mean((1, 2, 3), keepdim=True).clamp_min(1e-3)
        bg_gain = bg * gain.clamp_(0.5, 2.0)
        a_act = torch.maximum(rates(dt, c.window_s).view(-1), dt / learned.clamp_min(dt)) * valid
        step = (gray - maps[:, 2:3]).abs_()
        activity = maps[:, 3:4].lerp_(step, a_act.view(-1, 1, 1, 1))
        keep = torch.exp(-dt / c.window_s).view(-1, 1, 1, 1)
        peak = maps[:, 5:6]
        peak.copy_(torch.maximum(step * valid.view(-1, 1, 1, 1), peak * keep))
        sd_b, ratio, corr = veil_stats(gray, bg_gain)
        energy = gradient_energy(gray)
        veil = (sd_b >= c.texture_min) & (ratio <= c.contrast_max) & (ratio >= c.contrast_min)
        shifted = _box5(gray - bg_gain).abs_() >= c.diff_min
        veil &= corr >= c.correlation_min
        churn = (energy <= c.soft_max) & (peak <= c.jump_max)
        # sensor noise and compression shimmer set each camera's floor of activity
        floor = activity.flatten(1).median(1).values.view(-1, 1, 1, 1).mul(c.noise_factor).clamp_min_(c.activity_min)
        # a colourless frame (greyscale camera, IR night mode) is grey everywhere: grey is no evidence
        # there, and a soft drifting body (the churn regime) is then anything soft that moves, e.g.
        # pedestrians on a walkway; the veil regime rests on texture and still counts
        colourless = chr_.flatten(1).quantile(0.99, 1).view(-1, 1, 1, 1) <= c.colourless_max
        cand = (veil | (churn & ~colourless)) & shifted & (activity >= floor)
        cand &= (chr_ <= c.chroma_max) & (chr_ <= maps[:, 1:2] + c.chroma_tolerance)
        if self._zones is not None:
            cand &= F.max_pool2d(self._zones.for_batch(batch).any(1, keepdim=True).float(), 2) > 0

        a_bg = torch.maximum(rates(dt, c.background_tau_s).view(-1), dt / (learned + dt)).view(-1, 1, 1, 1)
        # selective update: what differs a lot (cars, people) is kept out of the background,
        # so it leaves no ghost behind
        a_bg = a_bg * ((gray - bg_gain).abs_() < c.foreground_min)
        maps[:, 0:2].lerp_(torch.cat((gray, chr_), 1), a_bg)
        maps[:, 2:3] = gray
        dtv = dt.view(-1, 1, 1, 1)
        maps[:, 4:5] = evidence = accrue(maps[:, 4:5], cand, dtv, c.decay, c.min_duration_s + c.hold_s)
        self._bank.scatter(ids, {"maps": maps, "timers": (learned + dt).view(-1, 1)}, index=idx)
        confirmed = cand & (evidence >= c.min_duration_s - 1e-6)
        return cand, confirmed, evidence

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Update every camera of ``batch`` and return the smoke detections.

        Args:
            batch: frames with ``rgb (N, 3, h, w)`` and ``gray (N, 1, h, w)`` float32 in [0, 1]
                on this analytic's device.

        Raises:
            ValueError: the working size differs from the first batch's.

        Returns:
            Detections (kind ``"smoke"``), one box per smoke region in original frame
            pixels, ``attributes``: ``duration_s`` (episode), ``area_frac`` (confirmed
            smoke area / frame area), ``regions``. Sets ``last_scores``: per frame, the
            confirmed area relative to ``min_area_frac`` (capped at 1) times 0.5, plus 0.5
            times the largest evidence over the candidates relative to ``min_duration_s``.
        """
        c = self.config
        cand, confirmed, evidence = self._maps(batch)
        h, w = cand.shape[-2:]
        frac = confirmed.flatten(1).float().mean(1)
        ev = (evidence * cand).flatten(1).amax(1) / max(c.min_duration_s, 1e-3)
        self.last_scores = (0.5 * (frac / c.min_area_frac).clamp(0, 1) + 0.5 * ev.clamp(0, 1)).float().cpu()
        flags = (frac >= c.min_area_frac).tolist()
        cpu = None
        if any(flags):
            cpu = torch.stack((confirmed, dilate(cand, 5)), 1)[:, :, 0].cpu().numpy()
        out: list[Detection] = []
        for i, cam in enumerate(batch.camera_ids):
            found = []
            if flags[i]:
                conf_i, group_i = cpu[i]
                regs, _ = regions(group_i, conf_i)
                found = [r for r in regs if r.area >= c.min_area_frac * h * w]
            emit = self._episodes.update(cam, batch.time_ns[i], bool(found))
            if emit is None:
                continue
            track_id, duration = emit
            out.append(Detection(
                index=i, kind=self.kind, score=float(max(0.5, self.last_scores[i])),
                boxes=[frame_box(r.box, batch.frame_sizes[i], (w, h)) for r in found], track_id=track_id,
                attributes={"duration_s": duration, "area_frac": sum(r.area for r in found) / (h * w),
                            "regions": float(len(found))}))
        return out

    def forget(self, camera_id: str) -> None:
        """Drop every state of ``camera_id`` (background, evidence, episode; episode numbers keep counting)."""
        if self._bank is not None:
            self._bank.forget(camera_id)
        self._clock.forget(camera_id)
        self._episodes.forget(camera_id)
