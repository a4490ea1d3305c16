"""Privacy masks: polygons (windows of homes...) blacked out before a frame leaves.

A camera's masks are drawn on a reference frame (``privacy_masks_reference_size``, the
upright picture) and rasterised for every frame size that arrives by
:func:`vigie.core.geometry.rasterize_outward`: scaled to the arriving size (non-uniformly
when the aspect ratio changed, e.g. 1280x720 -> 704x576) and rounded outward, so that a
resolution change never uncovers what a mask covered at the reference size. Frames are
resized before they are masked, so the mask is taken through the decoded size to the
published one, outward at each step: no luma of a hidden area reaches a published pixel.
Chroma is another matter: a 4:2:0 stream shares the colour of each 2x2 block, so the
camera's own encoding tints pixels next to a mask's edge with a colour of what it hides.
"""

from __future__ import annotations

import logging

import numpy as np

from vigie.core.cameras import CameraConfig
from vigie.core.geometry import covers_any_pixel, rasterize_outward
from vigie.core.geometry import rasterize_polygons as rasterize_masks
from .errors import SourceError

__all__ = ["CameraMasks", "MaskBox", "rasterize_masks", "apply_masks", "fill", "mask_box"]

log = logging.getLogger("vigie.grabber.masking")


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
    fill(image, mask, 0)
    return image


#: Where a mask falls: its bounding box and the mask within it (None: the whole box), or None for an empty mask.
MaskBox = tuple[tuple[slice, slice], np.ndarray | None] | None


def mask_box(mask: np.ndarray) -> MaskBox:
    """The :data:`MaskBox` of ``mask`` ((H, W) bool): filling its box only is ~3x faster than the whole frame,
    a plain slice when the box is all masked (rectangles) faster still."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return None
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    inside = mask[box]
    return box, None if inside.all() else np.ascontiguousarray(inside)


def fill(image: np.ndarray, where: np.ndarray | MaskBox, value: int) -> None:
    """Set ``image`` ((H, W) or (H, W, C)) to ``value`` where ``where`` ((H, W) bool of the same H, W, or its
    :func:`mask_box`) is True, in place."""
    part = mask_box(where) if isinstance(where, np.ndarray) else where
    if part is None:
        return
    box, inside = part
    if inside is None:
        image[box] = value
    else:
        image[box][inside] = value


class CameraMasks:
    """The privacy masks of one camera, for every frame size that arrives.

    ``reference``: (width, height) of the frame the masks were drawn on, from
    ``camera.privacy_masks_reference_size``; when the camera has none, the source size
    of its first frame (:meth:`raster` pins it, once, with a warning: a stream that
    starts at another profile than the one the masks were drawn on would misplace
    them, so set the field). ``assumed`` says which.
    """

    def __init__(self, camera: CameraConfig):
        self.camera_id = camera.id
        self.masks = camera.privacy_masks
        self.names = camera.mask_names()
        self.reference: tuple[int, int] | None = camera.privacy_masks_reference_size
        self.assumed = False
        self._last: tuple[tuple, np.ndarray] | None = None  # ((src_size, out_size), raster)

    def _assume_reference(self, src_size: tuple[int, int]) -> None:
        """Pin the first frame's size as the reference; raises :class:`SourceError` when a mask covers none of it."""
        for name, mask in zip(self.names, self.masks):
            if not covers_any_pixel(mask, src_size):
                raise SourceError(self.camera_id, (
                    f"privacy mask {name!r} of camera {self.camera_id!r} covers no pixel of its "
                    f"{src_size[0]}x{src_size[1]} frames: check its coordinates (pixels of the source "
                    "frame, origin top-left)"))
        self.reference, self.assumed = src_size, True
        log.warning(
            "camera %s: privacy_masks_reference_size is not set: its privacy masks are taken as drawn on "
            "its first frame, %dx%d; set it to the size of the picture they were drawn on, or a stream "
            "that starts at another resolution places them wrongly", self.camera_id, *src_size,
            extra={"camera": self.camera_id})

    def raster(self, src_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray | None:
        """(H, W) read-only bool mask of an ``out_size`` = (W, H) frame, or None when the camera has no mask.

        ``src_size``: the upright size of the decoded frame that was resized to
        ``out_size``: the mask also covers every output pixel that resizing mixed a
        straddling source pixel into (no luma of a hidden area leaks at the mask's edge),
        and pins the reference of a camera without one. Cached per sizes. Raises
        :class:`SourceError` when the reference is pinned on a frame that a mask misses.
        """
        if not self.masks:
            return None
        if self.reference is None:
            self._assume_reference(src_size)
        key = (src_size, out_size)
        if self._last is None or self._last[0] != key:
            self._last = (key, rasterize_outward(self.masks, self.reference, out_size, via_size=src_size))
        return self._last[1]
