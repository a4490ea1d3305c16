"""Sudden global lighting changes, detected once per camera before the analytics.

Lights switched on or off, or a camera's exposure jumping, change the whole frame at once; a
background model compares the new frame with the old scene and reports the whole frame, or
whatever stands out after a global gain correction (clipped highlights, colours shifted by the
saturation), as foreground: abandoned objects, people down, flames on an over-exposed orange
floor. The field's answer (K. Toyama, J. Krumm, B. Brumitt, B. Meyers, "Wallflower: principles and
practice of background maintenance", ICCV 1999, the *light switch* problem; R. Cucchiara et al.,
"Detecting moving objects, ghosts and shadows in video streams", IEEE PAMI 2003) is to notice
that most of the frame changed at once and to re-learn the background instead of reporting it.

:class:`LightingWatch` keeps per camera a reference of its ``block x block`` mean grey levels (an
exponential running mean, time constant ``tau_s``). A frame is a *lighting step* when at least
``min_fraction`` of the blocks that are neither black nor clipped (in the frame and the reference) brightened (or all
darkened) by the factor ``ratio`` or more against the reference. People or vehicles, even close to
the lens, cover part of the frame and rarely change it by one factor; a gradual change (dusk,
auto-exposure drifting) follows the reference. After a step the reference is the new frame.

:meth:`vigie.detector.plan.AnalyticsPlan.process` then calls
:meth:`~vigie.detector.analytics.base.Analytic.relight` of the camera's analytics with the step's gain:
those that learn the scene's brightness
(:attr:`~vigie.detector.analytics.base.Analytic.relearns_on_lighting`) drop that camera's state and
start again cold, as after a restart: fire and person down on any step, abandoned object and smoke
when the lights go on (their gain correction maps a darker frame back, but an over-exposed one has
clipped what it would need). The others (tamper, whose reference must not learn a covered lens;
crowd movement, whose baseline is motion) go on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from vigie.detector.analytics.base import FrameBatch
from vigie.detector.state import CameraStateBank, FrameClock


class LightingSettings(BaseModel):
    """Settings of :class:`LightingWatch` (grey levels in [0, 1])."""

    model_config = ConfigDict(extra="forbid")

    ratio: float = Field(1.4, gt=1.0, le=10.0, description=(
        "Brightness factor between a block and its reference that counts as a step (its inverse for darkening)."))
    min_fraction: float = Field(0.6, gt=0.0, le=1.0, description=(
        "Fraction of the usable blocks that must step the same way for a lighting step."))
    tau_s: float = Field(1.0, gt=0.0, le=60.0, description="Time constant of the reference, seconds.")
    block: int = Field(8, ge=2, le=32, description="Block size, working pixels.")
    dark: float = Field(0.04, ge=0.0, lt=1.0, description="Blocks darker than this in both frames are not used.")
    clipped: float = Field(0.97, gt=0.0, le=1.0, description="Blocks brighter than this in either are not used (clipped: they cannot show the factor).")


class LightingWatch:
    """Lighting steps of many cameras, batched (module docstring).

    Args:
        settings: thresholds.
        device: torch device of the frames.
    """

    def __init__(self, settings: LightingSettings | None = None, device: torch.device | str = "cpu") -> None:
        self.settings = settings or LightingSettings()
        self.device = torch.device(device)
        self._bank: CameraStateBank | None = None
        self._clock = FrameClock()
        #: Lighting steps seen since start, all cameras.
        self.steps = 0

    def check(self, batch: FrameBatch) -> list[float | None]:
        """Which frames of ``batch`` are lighting steps; updates each camera's reference.

        Returns:
            ``N`` values, one per frame: the step's gain (median brightness ratio of the usable blocks over
            their reference: above 1 lights on, below 1 lights off), or None where the frame is no step (a
            camera's first frame, or its first after a stream gap, never is: it starts a new reference).

        Raises:
            ValueError: the working size differs from the first batch's.
        """
        s = self.settings
        camera_ids = batch.camera_ids
        dt_s, restarts = self._clock.tick(camera_ids, batch.time_ns, batch.fps)
        blocks = F.avg_pool2d(batch.gray, s.block)
        if self._bank is None:
            self._bank = CameraStateBank({"ref": (tuple(blocks.shape[1:]), torch.float32)}, device=self.device)
        elif self._bank.shape("ref") != tuple(blocks.shape[1:]):
            raise ValueError(f"working size changed: blocks {self._bank.shape('ref')} -> {tuple(blocks.shape[1:])}")
        idx = self._bank.index(camera_ids)
        new = self._bank.new_mask(camera_ids) | torch.tensor(restarts, device=self.device)
        ref = torch.where(new.view(-1, 1, 1, 1), blocks, self._bank.gather(camera_ids, "ref", index=idx))
        high = torch.maximum(blocks, ref)
        usable = (high >= s.dark) & (high <= s.clipped)
        ratio = blocks / ref.clamp_min(1e-3)
        n = usable.flatten(1).sum(1).clamp_min(1)
        up = ((ratio >= s.ratio) & usable).flatten(1).sum(1) / n
        down = ((ratio <= 1.0 / s.ratio) & usable).flatten(1).sum(1) / n
        step = (torch.maximum(up, down) >= s.min_fraction) & ~new
        dt = torch.tensor(list(dt_s), dtype=torch.float32, device=self.device).view(-1, 1, 1, 1)
        alpha = torch.where((step | new).view(-1, 1, 1, 1), torch.ones_like(dt), -torch.expm1(-dt / s.tau_s))
        self._bank.scatter(camera_ids, ref + alpha * (blocks - ref), "ref", index=idx)
        if not bool(step.any()):  # the usual batch: no gain to measure
            return [None] * len(camera_ids)
        gain = ratio.masked_fill(~usable, float("nan")).flatten(1).nanmedian(1).values
        self.steps += int(step.sum())
        return [float(g) if f else None for f, g in zip(step.tolist(), gain.tolist())]

    def forget(self, camera_id: str) -> None:
        """Drop the camera's reference; its next frame starts a new one."""
        if self._bank is not None:
            self._bank.forget(camera_id)
        self._clock.forget(camera_id)
