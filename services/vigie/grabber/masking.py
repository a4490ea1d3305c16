"""Privacy masks: polygons (windows of homes...) blacked out before a frame leaves.

Polygons are given in SOURCE frame pixels and rasterised once per (masks, source
size, analysis size) with a vectorised even-odd scanline fill on pixel centres
(numpy only, no new dependency).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["rasterize_masks", "apply_masks"]

Polygon = Sequence[Sequence[float]]


def _polygon_points(mask: object) -> tuple[tuple[float, float], ...]:
    poly = getattr(mask, "polygon", mask)  # a PrivacyMask or a bare list of [x, y]
    pts = tuple((float(p[0]), float(p[1])) for p in poly)  # type: ignore[union-attr]
    if len(pts) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(pts)}")
    return pts


def rasterize_masks(
    masks: Iterable[object], src_size: tuple[int, int], dst_size: tuple[int, int]
) -> np.ndarray:
    """Fill the union of ``masks`` on a ``dst_size`` grid.

    ``masks``: ``PrivacyMask`` objects or sequences of ``[x, y]`` vertices in pixels
    of a source frame of ``src_size`` = (width, height); they are scaled to
    ``dst_size`` = (width, height). A pixel is masked when its centre lies inside a
    polygon (even-odd rule); parts outside the frame are clipped.

    Returns a read-only (H, W) bool array (H, W from ``dst_size``), cached: the same
    arguments return the same array object. Raises ``ValueError`` for a polygon with
    fewer than 3 points or a non-positive size.
    """
    polys = tuple(_polygon_points(m) for m in masks)
    sw, sh = (int(v) for v in src_size)
    dw, dh = (int(v) for v in dst_size)
    if min(sw, sh, dw, dh) <= 0:
        raise ValueError(f"sizes must be positive, got src={src_size} dst={dst_size}")
    return _rasterize_cached(polys, (sw, sh), (dw, dh))


@functools.lru_cache(maxsize=64)
def _rasterize_cached(
    polys: tuple[tuple[tuple[float, float], ...], ...], src: tuple[int, int], dst: tuple[int, int]
) -> np.ndarray:
    (sw, sh), (dw, dh) = src, dst
    sx, sy = dw / sw, dh / sh
    out = np.zeros((dh, dw), dtype=bool)
    for poly in polys:
        pts = np.asarray(poly, dtype=np.float64) * (sx, sy)
        out |= _fill_even_odd(pts, dw, dh)
    out.setflags(write=False)
    return out


def _fill_even_odd(pts: np.ndarray, w: int, h: int) -> np.ndarray:
    """(N, 2) float vertices in destination pixels -> (h, w) bool, pixel centres inside."""
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    yc = np.arange(h, dtype=np.float64) + 0.5  # pixel-centre rows
    # (E, H): does edge e cross the horizontal line through row r? (half-open rule)
    crosses = (y0[:, None] <= yc[None, :]) != (y1[:, None] <= yc[None, :])
    e_idx, rows = np.nonzero(crosses)
    if e_idx.size == 0:
        return np.zeros((h, w), dtype=bool)
    t = (yc[rows] - y0[e_idx]) / (y1[e_idx] - y0[e_idx])
    x_int = x0[e_idx] + t * (x1[e_idx] - x0[e_idx])
    # pixels i with centre i + 0.5 left of the crossing: i < x_int - 0.5
    cols = np.clip(np.ceil(x_int - 0.5), 0, w).astype(np.intp)
    toggles = np.zeros((h, w + 1), dtype=np.int32)
    np.add.at(toggles, (rows, np.zeros_like(cols)), 1)
    np.add.at(toggles, (rows, cols), -1)
    # crossings to the right of pixel i = sum over crossings with cols > i
    inside = np.cumsum(toggles, axis=1)[:, :w] % 2 == 1
    return inside


def apply_masks(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Set the pixels of ``image`` where ``mask`` is True to 0 (black), in place.

    ``image``: (H, W, 3) uint8 RGB (or (H, W) grey), writable; ``mask``: (H, W)
    bool from :func:`rasterize_masks`, or None for no mask. Returns ``image``.
    Raises ``ValueError`` when the shapes differ (never publishes unmasked).
    """
    if mask is None:
        return image
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size:  # work on the masks' bounding box only (~3x faster than the whole frame)
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        image[box][mask[box]] = 0
    return image
