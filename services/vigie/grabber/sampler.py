"""Sampling a video stream down to a target rate by presentation timestamps."""

from __future__ import annotations

import math

__all__ = ["PtsSampler"]


class PtsSampler:
    """Keeps the frames whose PTS reach the next instant of a ``fps`` grid.

    Decisions use timestamps, not frame counts, so variable-rate cameras and
    dropped frames give the right output rate. The grid is anchored at the first
    frame kept; each grid slot keeps at most one frame (the first at or after the
    slot, with a tolerance of 10 % of a period for timestamp jitter), so the
    long-run rate never exceeds ``fps``. A PTS that goes backwards (stream restart,
    reconnect, file loop) or jumps forward by more than ``max_gap_s`` re-anchors the
    grid on that frame, which is kept.

    Not thread-safe: use one sampler per stream, from one thread.
    """

    def __init__(self, fps: float, *, max_gap_s: float | None = None):
        """``fps`` > 0: target frames per second of video. ``max_gap_s``: forward jump
        (seconds) treated as a discontinuity; default ``max(5 s, 10 periods)``."""
        if not fps > 0 or not math.isfinite(fps):
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self.tolerance = 0.1 * self.period
        self.max_gap_s = max(5.0, 10 * self.period) if max_gap_s is None else float(max_gap_s)
        self.resyncs = 0  # discontinuities seen (not counting the first frame)
        self.reset()

    def reset(self) -> None:
        """Forget the grid: the next frame is kept and anchors a new one."""
        self._origin: float | None = None
        self._next = 0.0
        self._last: float | None = None

    def keep(self, pts: float) -> bool:
        """True when the frame at ``pts`` (seconds) should be kept."""
        last, self._last = self._last, pts
        if self._origin is None or last is None:
            return self._anchor(pts)
        if pts < last or pts - last > self.max_gap_s:
            self.resyncs += 1
            return self._anchor(pts)
        if pts < self._next - self.tolerance:
            return False
        # next grid instant strictly after this frame (+ tolerance)
        k = math.floor((pts + self.tolerance - self._origin) / self.period) + 1
        self._next = self._origin + k * self.period
        return True

    def _anchor(self, pts: float) -> bool:
        self._origin = pts
        self._next = pts + self.period
        return True

    __call__ = keep
