"""Dual (long-term / short-term) background model, batched over cameras.

Algorithm: F. Porikli, Y. Ivanov, T. Haga, "Robust abandoned object detection
using dual foregrounds", EURASIP Journal on Advances in Signal Processing, 2008.
Two backgrounds of the same scene are learned at different rates. The
short-term one absorbs an object that stops moving within seconds, the
long-term one only after minutes, so a pixel that is foreground for the
long-term model but background for the short-term one belongs to something
that has recently *become static* (a dropped bag, a parked car, a person
standing still).

Here each background is an exponential running average in RGB with a time
constant in seconds, converted per frame to a learning rate
``alpha = 1 - exp(-dt / tau)`` with ``dt`` the camera's frame interval. The
foreground test is a fixed threshold on the 3x3-smoothed max-channel absolute
difference (the frames are already shrunk to the working size with an
anti-aliasing filter, which removes most sensor and compression noise),
followed by a 3x3 morphological opening that drops specks and thin edges
(boolean erosion/dilation by shifted slices: several times faster on CPU than
max pooling with stride 1). The long-term
background is not updated where the short-term foreground is on (moving
people do not bleed into it), and it is compared after a global gain
correction (:func:`global_gain`) so that a cloud does not turn the whole frame
into foreground.

Cold start (``warmup_s > 0``): a long-term background copied from the first
frame keeps whatever stood in it (someone walking by when the camera, or the
detector, started), and when it leaves, the uncovered scene reads as a new
static object (a *ghost*). So for ``warmup_s`` stream seconds after a camera's
first frame the long-term background is *bootstrapped* instead of learned:
each pixel takes the mean of its longest *stable interval* so far (a run of
frames within the foreground threshold of the run's mean), adopted only where
the short-term foreground is off (the inside of a uniform moving object looks
stable from frame to frame, not against the short-term background); the background
initialisation of D. Gutchess, M. Trajkovic, E. Cohen-Solal, D. Lyons,
A. K. Jain, "A background model initialization algorithm for video
surveillance", ICCV 2001 (there the interval is chosen by a likelihood over
optical flow; here simply the longest, as in the stable-interval
initialisers reviewed by L. Maddalena, A. Petrosino, "Towards benchmarking
scene background initialization", ICIAP 2015 workshops). A pixel stops
looking once its interval lasted ``warmup_stable_s``: the scene seen still for
that long before something is set down there stays the background, so an
object left after the first seconds is not learned away. Things moving in the
first frame are thus replaced by the scene seen after they left; something
that stays put during the whole warm-up (a bag already there when the camera
starts) is the background, as it would be for anyone who arrives then.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from vigie.detector.state import CameraStateBank


class DualBackgroundConfig(BaseModel):
    """Settings of :class:`DualBackground` (times in seconds, differences in [0, 1] intensity)."""

    model_config = ConfigDict(extra="forbid")

    long_tau_s: float = Field(120.0, ge=5.0, le=3600.0, description=(
        "Time constant of the long-term background, seconds: a new static object fades "
        "into it after about 0.5-1.5 of this time."))
    short_tau_s: float = Field(1.5, ge=0.1, le=60.0, description=(
        "Time constant of the short-term background, seconds: an object that stops "
        "moving stops being short-term foreground after about 1-2 of this time."))
    diff_threshold: float = Field(0.06, gt=0.0, lt=1.0, description=(
        "Foreground threshold on the 3x3-smoothed max-channel absolute difference, "
        "intensity in [0, 1]."))
    open_px: int = Field(3, ge=1, le=9, description=(
        "Size of the square opening applied to each foreground mask, working pixels (1 = none)."))
    gain_compensation: bool = Field(True, description=(
        "Scale the long-term background by the global gain (median block brightness ratio) before "
        "comparing (global illumination changes)."))
    warmup_s: float = Field(0.0, ge=0.0, le=600.0, description=(
        "Cold-start bootstrapping, stream seconds after a camera's first frame during which the long-term "
        "background is each pixel's longest stable interval rather than a running average; 0: off "
        "(the first frame is the background)."))
    warmup_stable_s: float = Field(1.0, ge=0.2, le=600.0, description=(
        "During the warm-up, a pixel seen stable this many seconds keeps that value as its long-term "
        "background (what is set down later is not learned)."))


def box_sum3(x: torch.Tensor) -> torch.Tensor:
    """3x3 box sum of ``(N, C, h, w)`` ``x`` with zero padding (same size).

    Shifted-slice additions: several times faster on CPU than ``avg_pool2d`` with
    stride 1, and the same on every device.
    """
    p = F.pad(x, (1, 1, 1, 1))
    r = p[..., :-2] + p[..., 1:-1] + p[..., 2:]
    return r[..., :-2, :] + r[..., 1:-1, :] + r[..., 2:, :]


def _morph3(mask: torch.Tensor, dilation: bool) -> torch.Tensor:
    # outside the frame counts as False for dilation, True for erosion (borders do not erode)
    p = F.pad(mask, (1, 1, 1, 1), value=not dilation)
    if dilation:
        r = p[..., :-2] | p[..., 1:-1] | p[..., 2:]
        return r[..., :-2, :] | r[..., 1:-1, :] | r[..., 2:, :]
    r = p[..., :-2] & p[..., 1:-1] & p[..., 2:]
    return r[..., :-2, :] & r[..., 1:-1, :] & r[..., 2:, :]


def dilate(mask: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Dilation of a ``(N, 1, h, w) bool`` mask by a ``k x k`` square (odd ``k``; 1 = none)."""
    for _ in range(k // 2):
        mask = _morph3(mask, True)
    return mask


def erode(mask: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Erosion of a ``(N, 1, h, w) bool`` mask by a ``k x k`` square (odd ``k``; 1 = none)."""
    for _ in range(k // 2):
        mask = _morph3(mask, False)
    return mask


def opening(mask: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Morphological opening of a ``(N, 1, h, w) bool`` mask by a ``k x k`` square.

    Removes specks and lines thinner than ``k`` pixels; ``k = 1`` returns ``mask``.
    """
    return dilate(erode(mask, k), k)


def global_gain(rgb: torch.Tensor, bg: torch.Tensor, block: int = 8) -> torch.Tensor:
    """Global illumination gain ``(N, 1, 1, 1)`` of frames ``rgb`` over backgrounds ``bg`` (both ``(N, 3, h, w)``).

    The median over ``block x block`` blocks of the ratio of mean brightnesses, clamped
    to [0.5, 2]: people or vehicles covering up to half of the frame do not bias it, as
    they would bias a ratio of whole-frame means.
    """
    blocks = F.avg_pool2d(torch.cat((rgb.sum(1, keepdim=True), bg.sum(1, keepdim=True)), 1), block)
    gain = (blocks[:, 0] / blocks[:, 1].clamp_min(0.03)).flatten(1).median(1).values
    return gain.clamp(0.5, 2.0).view(-1, 1, 1, 1)


def accrue(evidence: torch.Tensor, present: torch.Tensor, dt_s: torch.Tensor, decay: float,
           cap_s: float) -> torch.Tensor:
    """Per-pixel evidence in seconds, ``(N, 1, h, w) float32``: ``evidence`` plus ``dt_s`` where
    ``present`` (``(N, 1, h, w) bool``), minus ``decay * dt_s`` elsewhere, kept in ``[0, cap_s]``.

    ``dt_s`` is ``(N, 1, 1, 1)`` seconds since each camera's previous frame. A new tensor.
    """
    return torch.where(present, evidence + dt_s, evidence - decay * dt_s).clamp_(0.0, cap_s)


def rates(dt_s: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Per-frame learning rates ``(N, 1, 1, 1)`` for frame intervals ``dt_s (N,)`` seconds."""
    return (-torch.expm1(-dt_s / tau_s)).view(-1, 1, 1, 1)


class DualBackground:
    """Long- and short-term running-average backgrounds of many cameras.

    State per camera (in a :class:`CameraStateBank`): two ``(3, h, w) float32``
    backgrounds, initialised from the camera's first frame, and its age (stream
    seconds seen); with ``warmup_s > 0`` also the current stable interval of each
    pixel (``(3, h, w)`` mean and ``(1, h, w)`` length, seconds) and the length of the
    interval the long-term background holds (see the module docstring).
    """

    def __init__(self, config: DualBackgroundConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self._bank: CameraStateBank | None = None

    def _bank_for(self, shape: tuple[int, int, int]) -> CameraStateBank:
        if self._bank is None:
            plane = (1, *shape[1:])
            fields = {"long": (shape, torch.float32), "short": (shape, torch.float32), "age": ((1,), torch.float32)}
            if self.config.warmup_s > 0:
                fields |= {"run_mean": (shape, torch.float32), "run_s": (plane, torch.float32),
                           "best_s": (plane, torch.float32)}
            self._bank = CameraStateBank(fields, device=self.device)
        elif self._bank.shape("long") != shape:
            raise ValueError(f"working size changed from {self._bank.shape('long')} to {shape}")
        return self._bank

    def update(self, rgb: torch.Tensor, camera_ids: Sequence[str],
               dt_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compare ``rgb`` with both backgrounds, then update them.

        Args:
            rgb: ``(N, 3, h, w) float32`` frames in [0, 1].
            camera_ids: ``N`` distinct camera ids.
            dt_s: ``(N,) float32`` seconds since each camera's previous frame.

        Returns:
            ``(fg_long, fg_short)``, each ``(N, 1, h, w) bool`` after opening.

        Raises:
            ValueError: the working size differs from the first batch's.
        """
        cfg = self.config
        bank = self._bank_for(tuple(rgb.shape[1:]))
        idx = bank.index(camera_ids)
        state = bank.gather(camera_ids, index=idx)
        long_bg, short_bg = state["long"], state["short"]
        if any(bank.is_new(c) for c in camera_ids):  # first frame of a camera: it is the background
            new = bank.new_mask(camera_ids).view(-1, 1, 1, 1)
            long_bg = torch.where(new, rgb, long_bg)
            short_bg = torch.where(new, rgb, short_bg)

        ref = long_bg
        if cfg.gain_compensation:
            ref = long_bg * global_gain(rgb, long_bg)
        both = torch.cat(((rgb - ref).abs_().amax(1, keepdim=True),
                          (rgb - short_bg).abs_().amax(1, keepdim=True)), 1)
        fg = opening(box_sum3(both) > 9.0 * cfg.diff_threshold, cfg.open_px)
        fg_long, fg_short = fg[:, 0:1], fg[:, 1:2]

        a_short = rates(dt_s, cfg.short_tau_s)
        a_long = rates(dt_s, cfg.long_tau_s) * (~fg_short)
        out = {"age": state["age"] + dt_s.view(-1, 1)}
        if cfg.warmup_s > 0:
            warming = (state["age"] < cfg.warmup_s).view(-1, 1, 1, 1)
            long_bg = self._bootstrap(rgb, long_bg, state, dt_s, warming & ~fg_short, out)
            a_long = a_long * (~warming)
        short_bg = short_bg.add_(a_short * (rgb - short_bg))
        long_bg = long_bg.add_(a_long * (rgb - long_bg))
        bank.scatter(camera_ids, {"long": long_bg, "short": short_bg, **out}, index=idx)
        return fg_long, fg_short

    def _bootstrap(self, rgb: torch.Tensor, long_bg: torch.Tensor, state: dict[str, torch.Tensor],
                   dt_s: torch.Tensor, warming: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Stable-interval step of the warm-up (module docstring): extends or restarts each pixel's
        interval, and where the camera is ``warming (N, 1, 1, 1) bool`` puts an interval that became the
        longest (and the held one is shorter than ``warmup_stable_s``) into ``long_bg``; the caller
        clears ``warming`` where the short-term foreground is on. New state goes
        into ``out``; returns the long-term backgrounds ``(N, 3, h, w)``."""
        cfg = self.config
        dtv = dt_s.view(-1, 1, 1, 1)
        mean, run_s, best_s = state["run_mean"], state["run_s"], state["best_s"]
        # a new camera's slot is zero-filled: its interval starts here (run_s 0 -> dt)
        still = (box_sum3((rgb - mean).abs().amax(1, keepdim=True)) <= 9.0 * cfg.diff_threshold) & (run_s > 0)
        run_s = torch.where(still, run_s + dtv, dtv.expand_as(run_s))
        mean = torch.where(still, mean + (rgb - mean) * (dtv / run_s), rgb)
        adopt = warming & (run_s >= best_s) & (best_s < cfg.warmup_stable_s)
        out |= {"run_mean": mean, "run_s": run_s, "best_s": torch.where(adopt, run_s, best_s)}
        return torch.where(adopt, mean, long_bg)

    def warming(self, camera_ids: Sequence[str]) -> torch.Tensor:
        """``(N,) bool`` on the device: whether each camera is still in its warm-up, i.e. its frames
        given to :meth:`update` span less than ``warmup_s`` stream seconds (an unknown camera is
        warming; none is when ``warmup_s`` is 0)."""
        cfg = self.config
        known = [c for c in camera_ids if self._bank is not None and c in self._bank]
        age = torch.zeros(len(camera_ids), device=self.device)
        if known:
            rows = torch.tensor([i for i, c in enumerate(camera_ids) if c in self._bank], device=self.device)
            age[rows] = self._bank.gather(known, "age")[:, 0]
        return age < cfg.warmup_s

    def backgrounds(self, camera_id: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(long, short)`` backgrounds ``(3, h, w) float32`` of a camera, or ``None`` if unknown."""
        if self._bank is None or camera_id not in self._bank:
            return None
        s = self._bank.gather([camera_id])
        return s["long"][0], s["short"][0]

    def heal(self, camera_id: str, mask: torch.Tensor, image: torch.Tensor) -> None:
        """Overwrite both backgrounds of ``camera_id`` with ``image`` where ``mask`` is set.

        Args:
            mask: ``(h, w) bool`` region, on the device.
            image: ``(3, h, w) float32`` current frame, on the device.
        """
        if self._bank is None or camera_id not in self._bank:
            return
        s = self._bank.gather([camera_id])
        for key in ("long", "short"):
            s[key] = torch.where(mask, image, s[key][0])[None]
        self._bank.scatter([camera_id], s)

    def forget(self, camera_id: str) -> None:
        """Drop the camera's backgrounds; its next frame re-initialises them."""
        if self._bank is not None:
            self._bank.forget(camera_id)
