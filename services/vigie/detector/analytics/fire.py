"""Fire analytic: flame-coloured regions that flicker and persist.

Classical video fire detection, three cues per pixel of the working grid, all batched in torch:

1. **Colour** (after T.-H. Chen, P.-H. Wu, Y.-C. Chiou, "An early fire-detection method
   based on image processing", ICIP 2004, rules 1-2, and the chrominance rules of
   T. Çelik, H. Demirel, "Fire detection in video sequences using a generic colour
   model", Fire Safety Journal 44, 2009): a pixel is flame-coloured when its red
   channel is bright (``R >= red_min``), clearly dominates green (``R - G >=
   red_green_min``; Chen's saturation rule and Çelik's ``|Cr - Cb| >= tau`` say the
   same for reds) and blue is not above green by more than ``blue_margin`` (Chen's
   ``G > B``, relaxed for the magenta tint of compressed, down-scaled flames).
2. **Flicker** (after B. U. Töreyin, Y. Dedeoğlu, U. Güdükbay, A. E. Çetin,
   "Computer vision based method for real-time fire and flame detection", Pattern
   Recognition Letters 27, 2006): flames change brightness from frame to frame
   while staying in place. The grabber samples at a few frames per second, far
   below flame flicker frequencies (~10 Hz), so the temporal wavelet of the paper
   is replaced by its aliased equivalent: exponential averages, time constant
   ``window_s``, of the absolute frame-to-frame changes of luminance and of hue (the
   G/R ratio, red to yellow), counted only while the pixel stays flame-coloured in
   both frames. A pixel flickers when they reach ``flicker_min`` and
   ``hue_flicker_min``, and the luminance flicker reaches ``noise_factor`` times the
   frame's median average change (sensor noise of 8 grey levels on the orange wooden
   floor of the intel one-by-one clip flickered like flames). Painted red walls, parked cars and red clothes are
   flame-coloured but do not flicker; a shadow or a person passing over an orange
   floor changes its brightness but not its hue, or takes it out of the colour class.
3. **Persistence**: the same average of the colour mask must reach
   ``colour_persistence`` (a red object passing by colours a pixel only briefly),
   and an evidence counter in seconds rises by ``dt`` while a candidate (colour AND
   flicker AND persistence, dilated 3x3 for the flames' jitter) covers the pixel and
   falls by ``decay * dt`` otherwise.
4. **Not a lamp** (region level): flames turn yellower as they brighten (hotter gas), so over a
   fire region the correlation of the frame-to-frame changes of luminance and of G/R (averaged
   over ``window_s``) is at least ``yellowing_min`` (FURG house6 and hillside flames: 0.25 to
   0.96; a red lamp or sign blinking over a red door: -1 to 0.25, it turns redder as it lights
   up); and flame tongues rise and fall apart where a lamp brightens as one piece, so the
   coherence of the changes (|5x5 sum of signed changes| / 5x5 sum of absolute changes,
   flicker-weighted over the region) is at most ``coherence_max`` (flames 0.6-0.92; orange
   and white lamps 1.0). A region failing either loses its evidence, which must build up
   again for ``min_duration_s``. Lamps blinking over non-flame-coloured surfaces never
   count: a pixel's changes count only while it stays flame-coloured in both frames.

Candidate pixels whose evidence reached ``min_duration_s`` are *confirmed*. On the
CPU, only for frames that have some, the candidates are grouped into connected
regions (pieces up to 2 cells apart joined); a region with a confirmed pixel and a
candidate area of at least ``min_area_px`` frame pixels is a fire region, unless it
blinks like a lamp or a lit sign (4.), boxed over
its flame-coloured pixels. A camera with fire regions has a fire *episode*: one
``track_id``, a detection on the frame it is raised and every ``repeat_s`` after,
ending after ``release_s`` without fire. Only colours and brightness changes are
analysed; nobody is identified.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from vigie.detector.analytics.background import accrue, box_sum3, dilate, rates
from vigie.detector.analytics.base import Analytic, Detection, FrameBatch
from vigie.detector.analytics.episodes import Episodes
from vigie.detector.analytics.firelib import frame_box, regions, union_box
from vigie.detector.analytics.zones import Zone, ZoneMasks
from vigie.detector.state import CameraStateBank, FrameClock


class FireConfig(BaseModel):
    """Settings of :class:`Fire` (times in seconds, intensities in [0, 1], areas in frame pixels squared)."""

    model_config = ConfigDict(extra="forbid")

    red_min: float = Field(0.5, ge=0.0, le=1.0, description="Smallest red value of a flame-coloured pixel.")
    red_green_min: float = Field(0.2, ge=0.0, le=1.0, description=(
        "Smallest red-minus-green difference of a flame-coloured pixel (its saturation towards red/orange)."))
    blue_margin: float = Field(0.08, ge=-1.0, le=1.0, description=(
        "Blue may exceed green by at most this much in a flame-coloured pixel (0: strict G >= B)."))
    window_s: float = Field(1.0, ge=0.1, le=30.0, description=(
        "Time constant of the per-pixel average of flicker, seconds."))
    colour_window_s: float = Field(3.0, ge=0.1, le=60.0, description=(
        "Time constant of the per-pixel average of flame colour, seconds (see colour_persistence)."))
    flicker_min: float = Field(0.025, gt=0.0, le=1.0, description=(
        "Average absolute frame-to-frame luminance change above which a pixel flickers."))
    noise_factor: float = Field(3.0, ge=0.0, le=100.0, description=(
        "The flicker must also reach this multiple of the frame's median average luminance change "
        "(sensor noise and compression shimmer on an orange floor are not flames); 0: off."))
    hue_flicker_min: float = Field(0.02, ge=0.0, le=1.0, description=(
        "Average absolute frame-to-frame change of the G/R ratio (red to yellow) above which a pixel "
        "flickers in hue too; shadows and lights passing over an orange surface change its brightness only."))
    yellowing_min: float = Field(0.2, ge=-1.0, le=1.0, description=(
        "Smallest correlation, over a fire region, between the frame-to-frame changes of luminance and of "
        "the G/R ratio (window_s averages): flames turn yellower as they brighten (hotter), a red lamp or "
        "sign turns redder as it lights up; -1: off."))
    coherence_max: float = Field(0.97, ge=0.0, le=1.0, description=(
        "Largest coherence of a fire region's brightness changes: per pixel, |5x5 sum of signed changes| / "
        "5x5 sum of absolute changes (window_s averages), averaged over the region weighted by flicker. A "
        "blinking lamp brightens and darkens as one piece (about 1), flame tongues rise and fall apart "
        "(0.6-0.9 on the FURG and hillside clips); 1: off."))
    colour_persistence: float = Field(0.5, ge=0.0, le=1.0, description=(
        "Fraction of the recent colour_window_s a pixel must have been flame-coloured."))
    min_duration_s: float = Field(1.0, ge=0.0, le=600.0, description=(
        "Seconds a pixel must stay a flickering flame candidate before fire is raised there."))
    decay: float = Field(1.0, ge=0.1, le=20.0, description=(
        "Evidence lost per second without candidate, relative to the rate at which it is gained."))
    hold_s: float = Field(1.0, ge=0.0, le=60.0, description=(
        "Evidence kept above min_duration_s, so a confirmed flame survives short dips."))
    min_area_px: float = Field(30.0, ge=1.0, le=1e7, description=(
        "Smallest flickering flame area of a fire region, frame pixels squared."))
    release_s: float = Field(3.0, ge=0.0, le=600.0, description=(
        "An episode ends after this many seconds without a fire region."))
    repeat_s: float = Field(1.0, ge=0.0, le=3600.0, description=(
        "Re-emit an active episode every this many seconds; 0 emits every frame with fire."))
    zones: list[Zone] = Field([], max_length=64, description=(
        "Where fire is looked for (polygons in frame pixels); empty: the whole frame."))


class Fire(Analytic):
    """Flame detector over batches of cameras (see the module docstring).

    Args:
        config: :class:`FireConfig`.
        device: torch device of the batches.

    Per-camera state in a :class:`~vigie.detector.state.CameraStateBank`, all
    ``float32``: maps ``(12, h, w)`` (previous luminance and G/R ratio, -1 where the
    pixel was not flame-coloured, their flicker averages, colour average, evidence
    in seconds, then the averages of the luminance x G/R change product, of their squares and of
    the 5x5 signed and absolute luminance changes, of every pixel's absolute luminance change) and timers
    ``(2,)`` (seconds of colour and of flicker averaging, for the cumulative start
    of the averages); episodes in Python. :meth:`process` runs under ``torch.inference_mode``.
    """

    kind = "fire"
    relearns_on_lighting = "any"
    config_model = FireConfig

    def __init__(self, config: FireConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.config = config or FireConfig()
        self.device = torch.device(device)
        self._bank: CameraStateBank | None = None
        self._clock = FrameClock()
        self._zones = ZoneMasks(self.config.zones, (160, 120), self.device) if self.config.zones else None
        self._episodes = Episodes("fire", self.config.repeat_s, self.config.release_s)
        self.last_scores = None

    def colour_mask(self, rgb: torch.Tensor) -> torch.Tensor:
        """Flame-coloured pixels ``(N, 1, h, w) bool`` of ``rgb (N, 3, h, w) float32`` in [0, 1]."""
        c = self.config
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        return (r >= c.red_min) & ((r - g) >= c.red_green_min) & ((b - g) <= c.blue_margin)

    def _maps(self, batch: FrameBatch) -> tuple[torch.Tensor, ...]:
        """Update the state; returns colour, candidate and confirmed masks ``(N, 1, h, w) bool``,
        evidence ``(N, 1, h, w)`` and per-pixel cues ``(N, 3, h, w)`` float32: luminance flicker,
        correlation of the luminance and G/R changes, coherence of the luminance changes."""
        c = self.config
        ids = batch.camera_ids
        gray, rgb = batch.gray, batch.rgb
        h, w = gray.shape[-2:]
        if self._bank is None:
            self._bank = CameraStateBank({"maps": ((12, h, w), torch.float32), "timers": ((2,), torch.float32)},
                                         device=self.device)
        elif self._bank.shape("maps")[1:] != (h, w):
            raise ValueError(f"working size changed from {self._bank.shape('maps')[1:]} to {(h, w)}")
        dts, restarts = self._clock.tick(ids, batch.time_ns, batch.fps)
        dt = torch.tensor(dts, dtype=torch.float32, device=self.device)
        valid = ~torch.tensor(restarts, device=self.device)  # frame difference meaningful
        idx = self._bank.index(ids)
        st = self._bank.gather(ids, index=idx)
        # previous luminance, previous G/R (-1 where not flame-coloured), flicker of both,
        # colour average, evidence (seconds)
        maps = st["maps"]
        learned_c, learned_f = st["timers"].unbind(1)

        colour = self.colour_mask(rgb)
        colour_f = colour.float()
        # cumulative averages while a camera starts, exponential ones afterwards
        a_c = torch.maximum(rates(dt, c.colour_window_s).view(-1), dt / (learned_c + dt)).view(-1, 1, 1, 1)
        a_f = (torch.maximum(rates(dt, c.window_s).view(-1), dt / (learned_f + dt)) * valid).view(-1, 1, 1, 1)
        col_avg = maps[:, 4:5].lerp_(colour_f, a_c)
        # brightness and hue change while the pixel stays flame-coloured: something passing in
        # front of an orange surface changes its colour class and does not count
        prev_q = maps[:, 1:2]
        both = colour & (prev_q >= 0.0)
        q = torch.where(colour, rgb[:, 1:2] / rgb[:, 0:1].clamp_min(0.1), -1.0)  # G/R: red low, yellow high
        flicker = maps[:, 2:4]
        flicker[:, 0:1].lerp_((gray - maps[:, 0:1]).abs_().mul_(both), a_f)
        flicker[:, 1:2].lerp_((q - prev_q).abs_().mul_(both), a_f)
        # blinking lamps: how luminance and hue change together, and how coherently around each pixel
        dy, dq = (gray - maps[:, 0:1]).mul_(both), (q - prev_q).mul_(both)
        local = box_sum3(box_sum3(torch.cat((dy, dy.abs()), 1)))
        maps[:, 6:11].lerp_(torch.cat((dy * dq, dy * dy, dq * dq, local.abs_()), 1), a_f)
        cues = torch.cat((maps[:, 6:7] / (maps[:, 7:8] * maps[:, 8:9]).sqrt().clamp_min(1e-8),
                          maps[:, 9:10] / maps[:, 10:11].clamp_min(1e-6)), 1)
        # every pixel's average change, flame-coloured or not: the camera's noise floor
        noise = maps[:, 11:12].lerp_((gray - maps[:, 0:1]).abs_(), a_f)
        floor = noise.flatten(1).median(1).values.view(-1, 1, 1, 1).mul(c.noise_factor).clamp_min(c.flicker_min)
        maps[:, 0:1] = gray
        maps[:, 1:2] = q
        learned_f = learned_f + dt * valid
        timers = torch.stack((learned_c + dt, learned_f), 1)

        cand = colour & (col_avg >= c.colour_persistence) & (flicker[:, 0:1] >= floor)
        cand &= flicker[:, 1:2] >= c.hue_flicker_min
        if self._zones is not None:
            cand &= self._zones.for_batch(batch).any(1, keepdim=True)
        dtv = dt.view(-1, 1, 1, 1)
        maps[:, 5:6] = evidence = accrue(maps[:, 5:6], dilate(cand, 3), dtv, c.decay, c.min_duration_s + c.hold_s)
        self._bank.scatter(ids, {"maps": maps, "timers": timers}, index=idx)
        confirmed = cand & (evidence >= c.min_duration_s - 1e-6)
        return colour, cand, confirmed, evidence, torch.cat((flicker[:, 0:1], cues), 1)

    @torch.inference_mode()
    def process(self, batch: FrameBatch) -> list[Detection]:
        """Update every camera of ``batch`` and return the fire detections.

        Args:
            batch: frames with ``rgb (N, 3, h, w)`` and ``gray (N, 1, h, w)`` float32 in [0, 1]
                on this analytic's device.

        Raises:
            ValueError: the working size differs from the first batch's.

        Returns:
            Detections (kind ``"fire"``), one box per fire region in original frame
            pixels, ``attributes``: ``duration_s`` (episode), ``area_px`` (flickering
            flame area, frame pixels squared), ``flicker`` (mean luminance change),
            ``regions``. Sets ``last_scores``: per frame, the largest evidence over the
            candidate pixels relative to ``min_duration_s`` times the candidate area
            relative to ``min_area_px``, each capped at 1.
        """
        c = self.config
        colour, cand, confirmed, evidence, cues = self._maps(batch)
        h, w = cand.shape[-2:]
        cell = torch.tensor([fw * fh / (w * h) for fw, fh in batch.frame_sizes], device=self.device)
        area = cand.flatten(1).sum(1) * cell
        ev_max = (evidence * cand).flatten(1).amax(1)
        dur = max(c.min_duration_s, 1e-3)
        self.last_scores = ((ev_max / dur).clamp(0, 1) * (area / c.min_area_px).clamp(0, 1)).float().cpu()
        flags = confirmed.flatten(1).any(1).tolist()
        cpu = None
        if any(flags):
            group = dilate(cand, 5)
            cpu = torch.stack((cand, confirmed, group, colour & group), 1)[:, :, 0].cpu().numpy()
            flicker_cpu, yellowing_cpu, coherence_cpu = cues.cpu().numpy().transpose(1, 0, 2, 3)
        out: list[Detection] = []
        for i, cam in enumerate(batch.camera_ids):
            found = []
            if flags[i]:
                cand_i, conf_i, group_i, col_i = cpu[i]
                regs, labels = regions(group_i, cand_i)
                for reg in regs:
                    inside = labels == reg.label
                    area_px = reg.area * float(cell[i])
                    if area_px < c.min_area_px or not conf_i[inside].any():
                        continue
                    core = cand_i & inside
                    weights = flicker_cpu[i][core]
                    coherence = float((weights * coherence_cpu[i][core]).sum() / max(float(weights.sum()), 1e-9))
                    if float(yellowing_cpu[i][core].mean()) < c.yellowing_min or coherence > c.coherence_max:
                        self._forget_evidence(cam, inside)  # a lamp or a sign blinking: it starts again
                        continue
                    col_in = col_i & inside
                    ys, xs = np.nonzero(col_in)
                    # one cell of margin: the colour rule cuts the flame's border, blended by the resize
                    box = (max(0, int(xs.min()) - 1), max(0, int(ys.min()) - 1), min(w, int(xs.max()) + 2),
                           min(h, int(ys.max()) + 2))
                    found.append((union_box([box, reg.box]), area_px,
                                  float(flicker_cpu[i][cand_i & inside].mean())))
            emit = self._episodes.update(cam, batch.time_ns[i], bool(found))
            if emit is None:
                continue
            track_id, duration = emit
            total = sum(f[1] for f in found)
            out.append(Detection(
                index=i, kind=self.kind, score=float(max(0.5, self.last_scores[i])),
                boxes=[frame_box(f[0], batch.frame_sizes[i], (w, h)) for f in found], track_id=track_id,
                attributes={"duration_s": duration, "area_px": total,
                            "flicker": sum(f[1] * f[2] for f in found) / total, "regions": float(len(found))}))
        return out

    def _forget_evidence(self, camera_id: str, mask: np.ndarray) -> None:
        """Clear the evidence of ``camera_id`` under ``mask (h, w) bool`` (a region taken for a lamp)."""
        maps = self._bank.gather([camera_id], "maps")
        maps[:, 5:6].masked_fill_(torch.from_numpy(mask).to(self.device), 0.0)
        self._bank.scatter([camera_id], maps, "maps")

    def forget(self, camera_id: str) -> None:
        """Drop every state of ``camera_id`` (averages, evidence, episode; episode numbers keep counting)."""
        if self._bank is not None:
            self._bank.forget(camera_id)
        self._clock.forget(camera_id)
        self._episodes.forget(camera_id)
