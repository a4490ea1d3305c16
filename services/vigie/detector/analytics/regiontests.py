"""Region tests of the abandoned-object analytic: is a new candidate an object, or not.

Each compares a frame with the long-term background over a region, both ``(3, h, w)``
float arrays in [0, 1] at the analytic's working size, the region ``(h, w) bool``.
"""

from __future__ import annotations

import numpy as np


def edge_energy(img: np.ndarray, band: np.ndarray) -> float:
    """Mean absolute central-difference gradient of ``img (3, h, w)``, summed over colours,
    over ``band (h, w) bool``."""
    g = np.zeros(img.shape[1:], dtype=img.dtype)
    g[:, 1:-1] += np.abs(img[:, :, 2:] - img[:, :, :-2]).sum(0)
    g[1:-1, :] += np.abs(img[:, 2:, :] - img[:, :-2, :]).sum(0)
    return float(g[band].mean()) if band.any() else 0.0


def shifted_match(frame: np.ndarray, back: np.ndarray, mask: np.ndarray, r: int) -> bool:
    """Whether ``back`` shifted by up to ``r`` pixels matches ``frame`` (both ``(3, h, w)``) over
    ``mask (h, w) bool`` with less than half the mean absolute difference of ``back`` unshifted."""
    if r == 0:
        return False
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    f, m = frame[:, y0:y1, x0:x1], mask[y0:y1, x0:x1]
    p = np.pad(back, ((0, 0), (r, r), (r, r)), mode="edge")
    err = {(dy, dx): float(np.abs(f - p[:, y0 + r + dy:y1 + r + dy, x0 + r + dx:x1 + r + dx]).sum(0)[m].mean())
           for dy in range(-r, r + 1) for dx in range(-r, r + 1)}
    return min(err.values()) < 0.5 * err[0, 0]


def uniform_offset(frame: np.ndarray, back: np.ndarray, mask: np.ndarray, max_offset: float) -> bool:
    """Whether ``frame`` differs from ``back`` over ``mask`` by a weak, near-uniform offset only.

    Per colour, the offset is the mean of ``frame - back`` over ``mask`` and the spread its
    standard deviation; true when the largest absolute offset is at most ``max_offset`` and
    the largest spread at most half of it. A flat surface that follows the camera's exposure
    (or a codec's drift) shifts as a whole; an object set down replaces the background's
    pattern with its own (measured on the bag of ABODA video 4: spread 0.65 of the offset;
    a white wall under noise sigma 8 or JPEG quality 12: 0.08-0.37). ``max_offset`` 0: false.
    """
    if max_offset <= 0 or not mask.any():
        return False
    d = (frame - back)[:, mask]
    offset = float(np.abs(d.mean(1)).max())
    return offset <= max_offset and float(d.std(1).max()) <= 0.5 * offset
