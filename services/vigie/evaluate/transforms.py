"""Transforms of real footage: the conditions that raise false alarms in the field, applied to real clips.

Each transform is a pure function ``(frame, index, t_s) -> frame``: ``frame`` is an
``(H, W, 3) uint8`` RGB image, ``index`` the frame's number in its clip (from 0) and
``t_s`` its time in the clip (PTS, seconds); it returns a new ``(H, W, 3) uint8`` image
and never changes its input. The same frame, index and time always give the same output
(the noise is seeded by the index), so a clip and its warm-up transform reproducibly.
Settings are keyword arguments, bound with :func:`functools.partial` or given on the
command line as ``NAME[:key=value,...]`` (:func:`parse`), e.g.
``vigie evaluate ../shared/data/pets2009_s2l1_view001 --transform flashing_light:colour=orange,hz=2``.

======================  ====================================================================
name                    what it imitates
======================  ====================================================================
``greyscale``           a camera in IR night mode: BT.601 luminance replicated on 3 channels
``lighting_step``       lights switched on or off, a cloud, an exposure jump: brightness x k
                        from ``at_s`` on
``flashing_light``      a blinking lamp or lit sign (red, orange or white, ``hz`` blinks per
                        second) composited at a fixed place into the real scene
``reflections``         wet ground: the upper scene mirrored, attenuated and rippled into the
                        lower part (people and lights reflected in puddles)
``camera_noise``        Gaussian sensor noise of standard deviation ``sigma`` (grey levels)
``low_bitrate``         low-bitrate compression: each frame re-encoded as JPEG at ``quality``
======================  ====================================================================

The evaluation runner applies a transform to each frame as the detector receives it
(after the grabber's resize and JPEG), to the warm-up clips and to the evaluated clip
alike (:func:`vigie.evaluate.runner.evaluate`, ``transform=``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import simplejpeg

#: ``(frame (H, W, 3) uint8 RGB, index in the clip, time in the clip in s) -> frame``.
Transform = Callable[[np.ndarray, int, float], np.ndarray]

#: RGB of the lamps of :func:`flashing_light`.
LAMP_COLOURS = {"red": (255, 30, 20), "orange": (255, 140, 0), "white": (255, 255, 255)}


def _check(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"a transform needs an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def greyscale(frame: np.ndarray, index: int, t_s: float) -> np.ndarray:
    """IR night mode: the BT.601 luminance ``0.299 R + 0.587 G + 0.114 B`` on all three channels.

    Raises:
        ValueError: ``frame`` is not ``(H, W, 3) uint8``.
    """
    _check(frame)
    y = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(_to_uint8(y)[..., None], 3, 2)


def lighting_step(frame: np.ndarray, index: int, t_s: float, *, factor: float = 0.5, at_s: float = 2.0) -> np.ndarray:
    """Global lighting change: every channel multiplied by ``factor`` (clipped to 255) from ``at_s`` seconds on.

    Raises:
        ValueError: ``frame`` is not ``(H, W, 3) uint8``, or ``factor`` is not positive.
    """
    _check(frame)
    if factor <= 0:
        raise ValueError(f"lighting_step: factor must be > 0, got {factor}")
    if t_s < at_s:
        return frame.copy()
    return _to_uint8(frame.astype(np.float32) * factor)


def flashing_light(frame: np.ndarray, index: int, t_s: float, *, colour: str = "red", hz: float = 2.0,
                   duty: float = 0.5, x: float = 0.72, y: float = 0.08, w: float = 0.12, h: float = 0.08,
                   glow: float = 0.5) -> np.ndarray:
    """A blinking lamp or lit sign composited into the real scene at a fixed place.

    The lamp is a rectangle of the frame (``x, y, w, h`` as fractions of its width and
    height), lit ``duty`` of each period of ``1 / hz`` seconds (phase from ``t_s``): then its
    core is the saturated ``colour`` (:data:`LAMP_COLOURS`) and a halo ``glow`` times the
    lamp's size around it brightens the scene with a soft fall-off; unlit, the scene shows
    unchanged. Shape and place are fixed: only the on/off state changes.

    Raises:
        ValueError: bad ``frame``, unknown ``colour``, ``hz <= 0``, ``duty`` outside ]0, 1], or a
            rectangle outside the frame.
    """
    _check(frame)
    if colour not in LAMP_COLOURS:
        raise ValueError(f"flashing_light: colour must be one of {', '.join(LAMP_COLOURS)}, got {colour!r}")
    if hz <= 0 or not 0 < duty <= 1:
        raise ValueError(f"flashing_light: need hz > 0 and 0 < duty <= 1, got hz={hz}, duty={duty}")
    if not (0 <= x and 0 <= y and 0 < w and 0 < h and x + w <= 1 and y + h <= 1):
        raise ValueError(f"flashing_light: the lamp ({x}, {y}, {w}, {h}) must lie inside the frame (fractions)")
    out = frame.copy()
    if (t_s * hz) % 1.0 >= duty:
        return out
    fh, fw = frame.shape[:2]
    x0, y0 = int(x * fw), int(y * fh)
    x1, y1 = max(x0 + 1, int((x + w) * fw)), max(y0 + 1, int((y + h) * fh))
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    # distance outside the rectangle, relative to the halo's reach
    dx = np.maximum(np.maximum(x0 - xx, xx - (x1 - 1)), 0.0)
    dy = np.maximum(np.maximum(y0 - yy, yy - (y1 - 1)), 0.0)
    reach = max(1.0, glow * max(x1 - x0, y1 - y0))
    alpha = np.clip(1.0 - np.hypot(dx, dy) / reach, 0.0, 1.0) ** 2
    alpha[y0:y1, x0:x1] = 1.0
    lamp = np.array(LAMP_COLOURS[colour], np.float32)
    blended = frame.astype(np.float32) * (1.0 - alpha[..., None]) + lamp * alpha[..., None]
    return _to_uint8(blended)


def reflections(frame: np.ndarray, index: int, t_s: float, *, start: float = 0.55, strength: float = 0.35,
                ripple_px: float = 3.0, wavelength_px: float = 9.0, speed_hz: float = 0.7) -> np.ndarray:
    """Wet ground: below ``start`` (fraction of the height), the scene above mirrored about that line,
    attenuated to ``strength`` and blended in, its rows shifted sideways by a ripple of
    ``ripple_px`` pixels (wavelength ``wavelength_px`` rows, drifting at ``speed_hz``).

    Raises:
        ValueError: bad ``frame``, ``start`` outside ]0, 1[ or ``strength`` outside [0, 1].
    """
    _check(frame)
    if not 0 < start < 1 or not 0 <= strength <= 1:
        raise ValueError(f"reflections: need 0 < start < 1 and 0 <= strength <= 1, got {start}, {strength}")
    fh, fw = frame.shape[:2]
    line = int(start * fh)
    rows = np.arange(line, fh)
    mirrored = np.clip(2 * line - 1 - rows, 0, fh - 1)
    shift = np.rint(ripple_px * np.sin(2 * np.pi * (rows / wavelength_px - speed_hz * t_s))).astype(int)
    cols = np.clip(np.arange(fw)[None, :] + shift[:, None], 0, fw - 1)
    reflected = frame[mirrored[:, None], cols].astype(np.float32)
    out = frame.astype(np.float32)
    # water darkens what it reflects and lets part of the ground show through
    out[line:] = out[line:] * (1.0 - strength) + reflected * strength
    return _to_uint8(out)


def camera_noise(frame: np.ndarray, index: int, t_s: float, *, sigma: float = 8.0, seed: int = 0) -> np.ndarray:
    """Gaussian sensor noise, standard deviation ``sigma`` grey levels, independent per pixel and
    channel, drawn from a generator seeded by ``seed`` and ``index`` (reproducible).

    Raises:
        ValueError: bad ``frame`` or ``sigma < 0``.
    """
    _check(frame)
    if sigma < 0:
        raise ValueError(f"camera_noise: sigma must be >= 0, got {sigma}")
    rng = np.random.default_rng((seed, index))
    return _to_uint8(frame.astype(np.float32) + rng.normal(0.0, sigma, frame.shape).astype(np.float32))


def low_bitrate(frame: np.ndarray, index: int, t_s: float, *, quality: int = 12) -> np.ndarray:
    """Low-bitrate compression: the frame encoded as a JPEG of ``quality`` (1-100; 10-15 shows
    the blocking and colour bleeding of a starved stream) and decoded again.

    Raises:
        ValueError: bad ``frame`` or ``quality`` outside 1-100.
    """
    _check(frame)
    if not 1 <= quality <= 100:
        raise ValueError(f"low_bitrate: quality must be in 1-100, got {quality}")
    data = simplejpeg.encode_jpeg(np.ascontiguousarray(frame), quality=int(quality), colorspace="RGB",
                                  colorsubsampling="420")
    return simplejpeg.decode_jpeg(data, colorspace="RGB")


#: Transforms by name.
TRANSFORMS: dict[str, Callable[..., np.ndarray]] = {f.__name__: f for f in (
    greyscale, lighting_step, flashing_light, reflections, camera_noise, low_bitrate)}


def _value(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse(spec: str) -> Transform:
    """The transform ``NAME[:key=value,...]`` (numbers are read as numbers), e.g.
    ``lighting_step:factor=1.8,at_s=3`` or ``greyscale``.

    Raises:
        ValueError: unknown name, a setting without ``=``, or a setting the transform does not take
            (checked on a 2x2 frame).
    """
    name, _, rest = spec.partition(":")
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r} (one of: {', '.join(TRANSFORMS)})")
    kwargs: dict[str, float | int | str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"transform {name}: settings are key=value, got {item!r}")
        kwargs[key.strip()] = _value(value.strip())
    transform = functools.partial(TRANSFORMS[name], **kwargs)
    try:
        transform(np.zeros((2, 2, 3), np.uint8), 0, 0.0)
    except TypeError as exc:
        raise ValueError(f"transform {name}: {exc}") from None
    return transform
