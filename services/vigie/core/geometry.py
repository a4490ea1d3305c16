"""Polygons on pixel grids: privacy masks in the grabber, zones in the detector.

Polygons are given in pixels of a frame of one size and rasterised on a grid of
another size with a vectorised even-odd scanline fill on pixel centres (numpy only),
cached per (polygons, source size, grid size). :func:`rasterize_outward` rounds
outward instead, for privacy masks: what a polygon covers on its reference grid stays
covered on a grid of any other size.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["Polygon", "covers_any_pixel", "crossing_edges", "rasterize_outward", "rasterize_polygons", "resample_outward"]

Polygon = Sequence[Sequence[float]]


def _polygon_points(mask: object) -> tuple[tuple[float, float], ...]:
    poly = getattr(mask, "polygon", mask)  # a PrivacyMask or a bare list of [x, y]
    pts = tuple((float(p[0]), float(p[1])) for p in poly)  # type: ignore[union-attr]
    if len(pts) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(pts)}")
    return pts


def _sizes(src_size: tuple[int, int], dst_size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The two (width, height) sizes as ints; raises ``ValueError`` when one is not positive."""
    (sw, sh), (dw, dh) = ((int(v) for v in size) for size in (src_size, dst_size))
    if min(sw, sh, dw, dh) <= 0:
        raise ValueError(f"sizes must be positive, got {src_size} and {dst_size}")
    return (sw, sh), (dw, dh)


def rasterize_polygons(
    polygons: Iterable[object], src_size: tuple[int, int], dst_size: tuple[int, int]
) -> np.ndarray:
    """Fill the union of ``polygons`` on a ``dst_size`` grid.

    ``polygons``: objects with a ``polygon`` attribute (privacy masks, zones) or sequences of ``[x, y]`` vertices in pixels
    of a source frame of ``src_size`` = (width, height); they are scaled to
    ``dst_size`` = (width, height). A pixel is masked when its centre lies inside a
    polygon (even-odd rule); parts outside the frame are clipped.

    Returns a read-only (H, W) bool array (H, W from ``dst_size``), cached: the same
    arguments return the same array object. Raises ``ValueError`` for a polygon with
    fewer than 3 points or a non-positive size.
    """
    polys = tuple(_polygon_points(m) for m in polygons)
    return _rasterize_cached(polys, *_sizes(src_size, dst_size))


def resample_outward(mask: np.ndarray, dst_size: tuple[int, int]) -> np.ndarray:
    """Resample a (H, W) bool ``mask`` to ``dst_size`` = (width, height), rounding outward.

    Both grids span the same picture (non-uniform scaling when the aspect ratios differ).
    A destination pixel is True when it overlaps, by a positive area, any True pixel of
    ``mask``: destination column ``u`` spans source columns ``[u*W/dw, (u+1)*W/dw]``, so it
    overlaps source columns ``floor(u*W/dw)`` to ``ceil((u+1)*W/dw) - 1`` (rows alike),
    computed in integers. Hence the region of every True source pixel is entirely covered
    by True destination pixels, whatever the sizes. Counts come from running sums along
    each axis in turn: O(H*W + H*dw + dh*dw). Returns a new (dh, dw) bool array. Raises ``ValueError`` for an empty
    mask or a non-positive size.
    """
    rh, rw = mask.shape
    dw, dh = (int(v) for v in dst_size)
    if min(rh, rw, dw, dh) <= 0:
        raise ValueError(f"sizes must be positive, got mask {rw}x{rh} -> {dst_size}")
    if (dw, dh) == (rw, rh):
        return np.array(mask, dtype=bool)
    u, v = np.arange(dw, dtype=np.int64), np.arange(dh, dtype=np.int64)
    c0, c1 = (u * rw) // dw, -((-(u + 1) * rw) // dw)  # floor, ceil
    r0, r1 = (v * rh) // dh, -((-(v + 1) * rh) // dh)
    # separable: first any() over each destination column's source columns, then over rows
    along = np.zeros((rh, rw + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, dtype=np.int32, out=along[:, 1:])
    cols = along[:, c1] > along[:, c0]  # (H, dw)
    down = np.zeros((rh + 1, dw), dtype=np.int32)
    np.cumsum(cols, axis=0, dtype=np.int32, out=down[1:])
    return down[r1] > down[r0]


def rasterize_outward(
    polygons: Iterable[object], ref_size: tuple[int, int], dst_size: tuple[int, int],
    via_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Fill the union of ``polygons``, drawn on a ``ref_size`` frame, on a ``dst_size`` grid, rounding outward.

    ``polygons`` as for :func:`rasterize_polygons`, vertices in pixels of a frame of
    ``ref_size`` = (width, height). The result is the union of (1) the pixels covered at
    the reference size (pixel centres inside, :func:`rasterize_polygons`) resampled
    outward by :func:`resample_outward`, and (2) the pixels of ``dst_size`` whose centre
    lies inside the scaled polygons. So every pixel covered at the reference size has its
    whole region covered at any other size (non-uniform scaling when aspect ratios
    differ): a privacy mask never uncovers what it covered.

    ``via_size``: the size of the picture that was resized to ``dst_size`` (a decoded
    frame before its analysis resize), when it differs from both. Its pixels straddling
    the mask's edge carry some of what is hidden, and resizing mixes each of them into
    every ``dst_size`` pixel its area touches, so the result also covers those: (1) is
    then taken through ``via_size`` (reference -> via -> destination, outward at each
    step). Cost: tens of ms at 1080p, once per sizes (cached like
    :func:`rasterize_polygons`). Returns a read-only (H, W) bool array. Raises
    ``ValueError`` like :func:`rasterize_polygons`.
    """
    polys = tuple(_polygon_points(m) for m in polygons)
    ref, dst = _sizes(ref_size, dst_size)
    via = _sizes(via_size, via_size)[0] if via_size is not None and tuple(via_size) not in (ref, dst) else None
    return _rasterize_outward_cached(polys, ref, dst, via)


def covers_any_pixel(polygon: object, src_size: tuple[int, int], dst_size: tuple[int, int] | None = None) -> bool:
    """Whether ``polygon`` covers at least one pixel of a ``dst_size`` grid, by the rule of :func:`rasterize_polygons`.

    ``polygon``: an object with a ``polygon`` attribute or a sequence of ``[x, y]``
    vertices in pixels of a frame of ``src_size`` = (width, height); ``dst_size``
    (default ``src_size``) is the grid it is scaled to. False means it would mask or
    select nothing (e.g. entirely outside the frame). Not cached. Raises
    ``ValueError`` like :func:`rasterize_polygons`.
    """
    pts = np.asarray(_polygon_points(polygon), dtype=np.float64)
    (sw, sh), (dw, dh) = _sizes(src_size, dst_size or src_size)
    pts = pts * (dw / sw, dh / sh)
    if pts[:, 0].max() <= 0 or pts[:, 1].max() <= 0 or pts[:, 0].min() >= dw or pts[:, 1].min() >= dh:
        return False  # bounding box off the grid
    return bool(_fill_even_odd(pts, dw, dh).any())


def crossing_edges(polygon: object) -> tuple[int, int] | None:
    """The first two edges of ``polygon`` that cross each other, or None for a simple polygon.

    ``polygon`` as for :func:`covers_any_pixel`; edge ``i`` joins vertex ``i`` to vertex
    ``i + 1`` (the last one closes the polygon). Only proper crossings of non-adjacent
    edges count (each edge strictly on both sides of the other): touching vertices and
    collinear overlaps are not reported. Returns ``(i, j)`` with ``i < j``. Raises
    ``ValueError`` for fewer than 3 vertices.
    """
    a = np.asarray(_polygon_points(polygon), dtype=np.float64)
    b = np.roll(a, -1, axis=0)
    d = b - a  # (n, 2) edge vectors

    def side(e: np.ndarray, p: np.ndarray) -> np.ndarray:
        """(n, n) sign of the cross product: which side of edge e[i] point p[j] lies on."""
        rel = p[None, :, :] - a[:, None, :]
        return np.sign(e[:, None, 0] * rel[..., 1] - e[:, None, 1] * rel[..., 0])

    s_a, s_b = side(d, a), side(d, b)  # [i, j]: sides of edge j's ends with respect to edge i
    straddles = s_a * s_b < 0
    crossing = straddles & straddles.T
    # adjacent edges share a vertex, which lies on the other's line (side 0): never "crossing"
    i, j = np.nonzero(np.triu(crossing, k=1))
    return (int(i[0]), int(j[0])) if i.size else None


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


@functools.lru_cache(maxsize=32)
def _rasterize_outward_cached(
    polys: tuple[tuple[tuple[float, float], ...], ...], ref: tuple[int, int], dst: tuple[int, int],
    via: tuple[int, int] | None,
) -> np.ndarray:
    if ref == dst and via is None:
        return _rasterize_cached(polys, ref, dst)
    covered = _rasterize_cached(polys, ref, ref)
    if via is not None:
        covered = _rasterize_outward_cached(polys, ref, via, None)
    out = resample_outward(covered, dst)
    out |= _rasterize_cached(polys, ref, dst)
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
