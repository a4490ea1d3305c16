"""A synthetic street scene rendered with numpy, for demos and load tests.

URL form: ``synthetic://scene?seed=1&w=720&h=480&fps=10&leave_at=5&duration=60&people=3``

* a textured, static background (pavement with a curb and a utility cabinet) with
  a little per-frame sensor noise;
* ``people`` pedestrian-like blobs (body ellipse + head circle + shadow) walking
  across the view at varying speeds;
* at ``leave_at`` seconds one of them puts down a dark box, stands a second and
  walks away; the box stays (``leave_at`` < 0: nobody leaves anything);
* a yellow/black striped band in the top-left corner marks every frame as
  SYNTHETIC (no text, so nothing to OCR and nothing to mistake for a real camera).

The scene is a pure function of the time ``t`` (seconds), so frames that the
sampler drops are never rendered.
"""

from __future__ import annotations

import math
import numpy as np

from vigie.core.cameras import SyntheticParams, parse_synthetic_url

__all__ = ["SyntheticParams", "parse_synthetic_url", "SyntheticScene"]

def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Low-frequency noise in [0, 1), (h, w) float32, by bilinear upsampling of a coarse grid."""
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    ys = np.arange(h, dtype=np.float32) / cell
    xs = np.arange(w, dtype=np.float32) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a, b = grid[y0][:, x0], grid[y0][:, x0 + 1]
    c, d = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


class SyntheticScene:
    """Renders frames of size ``out_size`` = (width, height) in pixels.

    Geometry is defined on the native ``params.w`` x ``params.h`` canvas and scaled,
    so rendering directly at the analysis size gives the same scene.
    """

    N_NOISE = 4

    def __init__(self, params: SyntheticParams, out_size: tuple[int, int] | None = None):
        self.p = params
        self.W, self.H = out_size or (params.w, params.h)
        rng = np.random.default_rng(params.seed)
        self._bg = self._background(rng)
        noise = rng.integers(-3, 4, size=(self.N_NOISE, self.H, self.W, 1), dtype=np.int16)
        self._noisy = [np.clip(self._bg.astype(np.int16) + n, 0, 255).astype(np.uint8) for n in noise]
        self._walkers = []
        for k in range(params.people):
            lane = 0.55 + 0.4 * (k + rng.random() * 0.5) / params.people  # foot y, fraction of H
            self._walkers.append({
                "lane": lane,
                "dir": 1 if k % 2 == 0 else -1,
                "speed": 0.06 + 0.08 * rng.random(),  # fraction of W per second
                "wobble": 0.25 + 0.2 * rng.random(),
                "phase": rng.random() * 2 * math.pi,
                "offset": rng.random(),
                "shirt": rng.integers(30, 220, 3),
                "trousers": rng.integers(20, 90, 3),
            })
        self._box_color = np.array([28, 26, 24], np.uint8)

    # -- static parts -------------------------------------------------------------
    def _background(self, rng: np.random.Generator) -> np.ndarray:
        W, H = self.W, self.H
        s = W / 720.0
        low = _smooth_noise(rng, H, W, max(8, int(48 * s)))
        fine = rng.random((H, W), dtype=np.float32)
        yy = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None]
        lum = 95 + 60 * yy + 30 * low + 14 * fine  # pavement: brighter towards the camera
        img = np.repeat(lum[:, :, None], 3, axis=2)
        img *= np.array([1.0, 0.98, 0.93], np.float32)  # warm grey
        # paving joints
        step = max(6, int(40 * s))
        img[:, ::step] *= 0.82
        img[::step, :] *= 0.85
        # a darker road above the curb
        curb = int(0.38 * H)
        img[:curb] = 60 + 25 * low[:curb, :, None] + 8 * fine[:curb, :, None]
        img[curb:curb + max(2, int(6 * s))] = 175
        # a light-blue utility cabinet on the pavement
        cx0, cx1, cy0, cy1 = int(0.62 * W), int(0.70 * W), int(0.42 * H), int(0.62 * H)
        img[cy0:cy1, cx0:cx1] = (120, 170, 200)
        img[cy0:cy1, cx0:cx0 + max(1, int(3 * s))] = (80, 120, 150)
        out = np.clip(img, 0, 255).astype(np.uint8)
        # SYNTHETIC marker: diagonal yellow/black stripes, top-left corner
        bw, bh = max(16, int(64 * s)), max(6, int(14 * s))
        by, bx = np.mgrid[0:bh, 0:bw]
        stripes = ((bx + by) // max(2, int(5 * s))) % 2 == 0
        out[:bh, :bw] = np.where(stripes[:, :, None], np.array([255, 215, 0], np.uint8), np.uint8(0))
        return out

    # -- drawing helpers --------------------------------------------------------
    def _ellipse(self, img: np.ndarray, cx: float, cy: float, rx: float, ry: float,
                 color: np.ndarray, alpha: float = 1.0) -> None:
        x0, x1 = max(0, int(cx - rx)), min(self.W, int(cx + rx) + 1)
        y0, y1 = max(0, int(cy - ry)), min(self.H, int(cy + ry) + 1)
        if x0 >= x1 or y0 >= y1 or rx <= 0 or ry <= 0:
            return
        yy, xx = np.ogrid[y0:y1, x0:x1]
        inside = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0
        region = img[y0:y1, x0:x1]
        if alpha >= 1.0:
            region[inside] = color
        else:
            region[inside] = (region[inside] * (1 - alpha) + np.asarray(color) * alpha).astype(np.uint8)

    def _person(self, img: np.ndarray, x: float, foot: float, height: float, w: dict, t: float) -> None:
        bob = 0.015 * height * math.sin(t * 9.0 + w["phase"])
        self._ellipse(img, x, foot, 0.22 * height, 0.05 * height, np.uint8(0), alpha=0.35)  # shadow
        legs_y = foot - 0.22 * height
        self._ellipse(img, x, legs_y + bob, 0.11 * height, 0.23 * height, w["trousers"])
        self._ellipse(img, x, foot - 0.55 * height + bob, 0.16 * height, 0.22 * height, w["shirt"])
        self._ellipse(img, x, foot - 0.86 * height + bob, 0.08 * height, 0.09 * height,
                      np.array([200, 160, 130], np.uint8))

    def _box(self, img: np.ndarray, x: float, foot: float, size: float) -> None:
        x0, x1 = max(0, int(x - size / 2)), min(self.W, int(x + size / 2))
        y0, y1 = max(0, int(foot - size * 0.8)), min(self.H, int(foot))
        if x0 < x1 and y0 < y1:
            img[y0:y1, x0:x1] = self._box_color
            img[y0:min(y1, y0 + max(1, int(size * 0.1))), x0:x1] = 55  # lid edge

    # -- motion ----------------------------------------------------------------
    def _walker_x(self, w: dict, t: float) -> float:
        """x in pixels (may be off-screen); speed varies by +-wobble around its mean."""
        v, om = w["speed"], 0.7
        dist = v * t + w["wobble"] * v / om * (math.cos(w["phase"]) - math.cos(om * t + w["phase"]))
        span = 1.3  # fraction of W travelled before re-entering
        f = (w["offset"] + dist) % span - 0.15
        return (f if w["dir"] > 0 else 1.0 - f) * self.W

    def object_box(self, t: float) -> tuple[int, int, int, int] | None:
        """Ground truth: the left object's box (x0, y0, x1, y1) in output pixels at time
        ``t`` seconds once it is on the ground (t >= leave_at), else None."""
        if self.p.leave_at < 0 or t < self.p.leave_at:
            return None
        foot = 0.80 * self.H
        height = self._height(foot)
        x, size = 0.45 * self.W - 0.20 * height, 0.24 * height
        return int(x - size / 2), int(foot - size * 0.8), int(x + size / 2), int(foot)

    def _height(self, foot: float) -> float:
        """Person height in pixels for a foot position (simple perspective)."""
        return (0.18 + 0.22 * (foot / self.H - 0.5)) * self.H

    def render(self, t: float) -> np.ndarray:
        """The frame at time ``t`` seconds: (H, W, 3) uint8 RGB, a new array."""
        idx = int(t * self.p.fps) % self.N_NOISE
        img = self._noisy[idx].copy()
        H, W = self.H, self.W
        people = []
        for k, w in enumerate(self._walkers):
            if k == 0 and self.p.leave_at >= 0:
                continue
            foot = w["lane"] * H
            people.append((foot, self._walker_x(w, t), w))
        box = None
        if self.p.leave_at >= 0:  # walker 0 carries a box in, leaves it, walks away
            w = self._walkers[0]
            foot, v = 0.80 * H, 0.12 * W
            drop_x, la = 0.45 * W, self.p.leave_at
            if t < la:
                x = drop_x - v * (la - t)
            elif t < la + 1.0:
                x = drop_x
            else:
                x = drop_x + v * (t - la - 1.0)
            height = self._height(foot)
            bx = drop_x - 0.20 * height if t >= la else x - 0.20 * height
            bfoot = foot if t >= la else foot - 0.25 * height
            box = (bx, bfoot, 0.24 * height)
            people.append((foot, x, w))
        if box is not None and t >= self.p.leave_at:
            self._box(img, *box)
        for foot, x, w in sorted(people, key=lambda p: p[0]):  # far ones first
            height = self._height(foot)
            self._person(img, x, foot, height, w, t)
        if box is not None and t < self.p.leave_at:
            self._box(img, *box)  # carried: in front of the body
        return img
