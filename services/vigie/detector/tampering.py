"""Synthetic camera tampering injected into decoded frames, for tests and evaluation.

Every function is pure: it takes an ``(H, W, 3) uint8`` RGB frame and returns a new
frame of the same shape and dtype (the input is never modified). Random parts are
drawn from a generator seeded by the caller, so results are reproducible.

The conditions follow the tampering taxonomy of Ribnick et al., "Real-time detection
of camera tampering" (IEEE AVSS 2006) and Aksay et al., "Camera tamper detection
using wavelet analysis for video surveillance" (IEEE AVSS 2007):

* :func:`blind_black`: the lens is covered or the signal is cut (a dark, almost
  uniform frame carrying only sensor noise);
* :func:`blind_saturate`: the camera is dazzled (torch, sun, spray of white paint):
  a gain that clips most of the frame to white;
* :func:`blur`: the lens is defocused or smeared (Gaussian or box blur);
* :func:`shift`: the camera was turned or pushed (the view is translated, or a
  different region of the scene is cropped and resized to fill the frame).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _check(frame: np.ndarray) -> None:
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
        raise ValueError(f"frame must be an (H, W, 3) uint8 RGB array, got {getattr(frame, 'shape', None)} "
                         f"{getattr(frame, 'dtype', None)}")


def blind_black(frame: np.ndarray, residual: float = 0.03, noise: float = 2.0, seed: int = 0) -> np.ndarray:
    """A covered lens or lost signal: the frame darkened to ``residual`` of its intensity, plus noise.

    Args:
        frame: ``(H, W, 3) uint8`` RGB.
        residual: fraction of the original intensity that leaks through, in [0, 1]
            (0 gives a black frame with noise only).
        noise: standard deviation of additive Gaussian sensor noise, grey levels (>= 0),
            one value per pixel shared by the three channels.
        seed: seed of the noise generator.

    Returns:
        A new ``(H, W, 3) uint8`` frame.

    Raises:
        ValueError: not an ``(H, W, 3) uint8`` frame, or ``residual``/``noise`` out of range.
    """
    _check(frame)
    if not 0.0 <= residual <= 1.0 or noise < 0.0:
        raise ValueError("residual must be in [0, 1] and noise >= 0")
    out = frame.astype(np.float32) * residual
    if noise > 0:
        out += np.random.default_rng(seed).normal(0.0, noise, frame.shape[:2] + (1,)).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def blind_saturate(frame: np.ndarray, gain: float = 6.0, lift: float = 0.2) -> np.ndarray:
    """A dazzled or over-exposed camera: ``255 * lift + gain * frame``, clipped to white.

    With the defaults every pixel brighter than about 34 grey levels becomes pure white;
    only the darkest parts of the scene keep some (washed-out) contrast.

    Args:
        frame: ``(H, W, 3) uint8`` RGB.
        gain: exposure gain (>= 1).
        lift: brightness added before clipping, as a fraction of full scale, in [0, 1].

    Returns:
        A new ``(H, W, 3) uint8`` frame.

    Raises:
        ValueError: not an ``(H, W, 3) uint8`` frame, ``gain < 1`` or ``lift`` out of [0, 1].
    """
    _check(frame)
    if gain < 1.0 or not 0.0 <= lift <= 1.0:
        raise ValueError("gain must be >= 1 and lift in [0, 1]")
    out = frame.astype(np.float32) * gain + 255.0 * lift
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def blur(frame: np.ndarray, sigma: float | None = None, kind: str = "gaussian") -> np.ndarray:
    """A defocused or smeared lens: strong Gaussian or box blur of each channel.

    Args:
        frame: ``(H, W, 3) uint8`` RGB.
        sigma: blur scale in pixels: the Gaussian's standard deviation, or for ``"box"`` a
            box of side ``2 * sigma + 1``. Default: ``W / 80`` (8 px on a 640-wide frame).
        kind: ``"gaussian"`` or ``"box"``.

    Returns:
        A new ``(H, W, 3) uint8`` frame (borders reflected).

    Raises:
        ValueError: not an ``(H, W, 3) uint8`` frame, ``sigma <= 0`` or unknown ``kind``.
    """
    _check(frame)
    s = frame.shape[1] / 80.0 if sigma is None else float(sigma)
    if s <= 0:
        raise ValueError("sigma must be positive")
    img = frame.astype(np.float32)
    if kind == "gaussian":
        out = ndimage.gaussian_filter(img, sigma=(s, s, 0), mode="reflect")
    elif kind == "box":
        side = 2 * int(round(s)) + 1
        out = ndimage.uniform_filter(img, size=(side, side, 1), mode="reflect")
    else:
        raise ValueError(f"kind must be 'gaussian' or 'box', got {kind!r}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def shift(frame: np.ndarray, dx: int | None = None, dy: int | None = None, fill: str = "reflect",
          zoom: float = 1.0) -> np.ndarray:
    """The camera was moved: the view translated by ``(dx, dy)`` pixels, optionally zoomed.

    With ``zoom == 1`` the content moves by ``(dx, dy)`` (positive: right and down) and the
    uncovered border is filled. With ``zoom > 1`` the output is the region of size
    ``(W / zoom, H / zoom)`` centred on ``(W / 2 - dx, H / 2 - dy)`` (the content moves the
    same way as in the translation), resized (bilinear, mirrored outside the frame) to the
    full frame: the camera now looks at another, closer region.

    Args:
        frame: ``(H, W, 3) uint8`` RGB.
        dx, dy: displacement in pixels; default ``W / 8`` and ``H / 8`` (a clear pan/tilt).
        fill: border fill for the translation: ``"reflect"`` (mirrored scene, textured like
            what a real pan would reveal), ``"edge"`` (replicated border) or ``"black"``.
        zoom: ``>= 1``; 1 means a pure translation.

    Returns:
        A new ``(H, W, 3) uint8`` frame.

    Raises:
        ValueError: not an ``(H, W, 3) uint8`` frame, unknown ``fill``, ``zoom < 1``, or a
            displacement that leaves the frame (``|dx| >= W`` or ``|dy| >= H``).
    """
    _check(frame)
    h, w = frame.shape[:2]
    dx = w // 8 if dx is None else int(dx)
    dy = h // 8 if dy is None else int(dy)
    if abs(dx) >= w or abs(dy) >= h:
        raise ValueError("the displacement must be smaller than the frame")
    if zoom < 1.0:
        raise ValueError("zoom must be >= 1")
    if zoom > 1.0:
        cy, cx = (h - 1) / 2 - dy, (w - 1) / 2 - dx
        ys = cy + (np.arange(h, dtype=np.float32) - (h - 1) / 2) / zoom
        xs = cx + (np.arange(w, dtype=np.float32) - (w - 1) / 2) / zoom
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        out = np.stack([ndimage.map_coordinates(frame[..., c].astype(np.float32), [yy, xx], order=1,
                                                mode="reflect") for c in range(3)], -1)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    modes = {"reflect": "symmetric", "edge": "edge", "black": "constant"}
    if fill not in modes:
        raise ValueError(f"fill must be one of {sorted(modes)}, got {fill!r}")
    pad = ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0))
    padded = np.pad(frame, pad, mode=modes[fill])
    y0, x0 = abs(dy) - dy, abs(dx) - dx
    return np.ascontiguousarray(padded[y0:y0 + h, x0:x0 + w])
