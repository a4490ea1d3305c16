"""YUV 4:2:0 pictures: how frames decoded by FFmpeg go from the decoder to the JPEG, never through RGB.

A frame kept by the sampler is scaled and converted by libswscale in one pass, from the
decoder's format (limited-range ``yuv420p`` for most cameras) to full-range ``yuvj420p`` at
the output size, BT.601 matrix, AREA interpolation: the planes JPEG (JFIF) stores. Privacy masks black
them out (Y = 0, Cb = Cr = 128 is RGB 0, 0, 0 in JFIF) and libjpeg-turbo encodes them as
they are (:func:`encode_planes`), with neither the RGB conversion of the frame nor the
encoder's own conversion back to YCbCr and chroma subsampling. On a 720x480 clip at 5 fps
sampling this costs about 1.1 ms per published frame where the RGB path cost about 3 ms.

Chroma: each Cb/Cr sample covers 2x2 pixels. A sample whose 2x2 block holds a masked pixel
is set neutral (:func:`chroma_mask`, outward), so no colour of a masked area reaches the
picture through the picture's own subsampling; the JPEG of an RGB frame mixed it in.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
import simplejpeg
from av.video.reformatter import VideoReformatter

from .masking import MaskBox, fill, mask_box

__all__ = ["PlanarMask", "Yuv420", "apply_masks_planes", "chroma_mask", "encode_planes", "to_planes"]

#: libswscale's name of full-range (JFIF) YUV 4:2:0.
FULL_RANGE_420 = "yuvj420p"
#: The YCbCr matrix JPEG decoders assume (JFIF: BT.601); a BT.709 stream (most HD cameras) is converted to it.
JFIF_MATRIX = "ITU601"


@dataclass(slots=True)
class Yuv420:
    """A full-range (JFIF) YCbCr 4:2:0 picture, three writable uint8 planes.

    ``y``: (H, W); ``u`` (Cb) and ``v`` (Cr): (ceil(H/2), ceil(W/2)). The planes may be
    strided views of an ``av.VideoFrame``'s buffers (which they keep alive).
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3), as for an RGB image of the same picture."""
        return (*self.y.shape, 3)

    def to_rgb(self) -> np.ndarray:
        """The picture as (H, W, 3) uint8 RGB (tests, debugging; not on the grabber's path)."""
        frame = av.VideoFrame(self.y.shape[1], self.y.shape[0], FULL_RANGE_420)
        for plane, data in zip(frame.planes, (self.y, self.u, self.v)):
            view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            view[:, :plane.width] = data
        return frame.to_ndarray(format="rgb24")


def to_planes(frame: av.VideoFrame, width: int, height: int, reformatter: VideoReformatter) -> Yuv420:
    """``frame`` (any pixel format) scaled to ``width`` x ``height`` (AREA) as a full-range BT.601 :class:`Yuv420`.

    The frame's own matrix (its ``colorspace``: BT.709 for most HD cameras) is converted to
    BT.601, what JPEG decoders assume, in the same pass: colours stay as the stream gives them.

    ``reformatter``: one per decode thread, reused (libswscale keeps its context while the
    sizes and formats stay the same: about 0.25 ms saved per frame at 640x427).
    """
    out = reformatter.reformat(frame, width=width, height=height, format=FULL_RANGE_420, interpolation="AREA",
                               dst_colorspace=JFIF_MATRIX, threads=1)
    return Yuv420(*(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in out.planes))


def chroma_mask(mask: np.ndarray) -> np.ndarray:
    """The (ceil(H/2), ceil(W/2)) bool mask of the chroma samples whose 2x2 block holds a True of ``mask`` (H, W)."""
    h, w = mask.shape
    padded = np.zeros((h + h % 2, w + w % 2), bool)
    padded[:h, :w] = mask
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).any(axis=(1, 3))


@dataclass(frozen=True, slots=True)
class PlanarMask:
    """A privacy mask raster prepared for :class:`Yuv420` pictures of its size (:meth:`of`; make it once per
    raster): ``shape`` (H, W), where luma goes black and where chroma goes neutral (:data:`~.masking.MaskBox`)."""

    shape: tuple[int, int]
    chroma_shape: tuple[int, int]
    luma: MaskBox
    chroma: MaskBox

    @classmethod
    def of(cls, mask: np.ndarray) -> PlanarMask:
        """The :class:`PlanarMask` of ``mask`` ((H, W) bool; chroma by :func:`chroma_mask`)."""
        chroma = chroma_mask(mask)
        return cls(mask.shape, chroma.shape, mask_box(mask), mask_box(chroma))


def apply_masks_planes(picture: Yuv420, mask: np.ndarray | PlanarMask) -> Yuv420:
    """Black out ``picture`` where ``mask`` ((H, W) bool, or its :class:`PlanarMask`) is True, in place.

    Luma 0 under the mask, chroma neutral (128) for every sample whose 2x2 block it touches.
    Returns ``picture``. Raises ``ValueError`` when the shapes differ (never publishes unmasked).
    """
    prepared = mask if isinstance(mask, PlanarMask) else PlanarMask.of(mask)
    if prepared.shape != picture.y.shape or prepared.chroma_shape != picture.u.shape:
        raise ValueError(f"mask shape {prepared.shape} does not match picture shape {picture.y.shape}")
    fill(picture.y, prepared.luma, 0)
    fill(picture.u, prepared.chroma, 128)
    fill(picture.v, prepared.chroma, 128)
    return picture


def encode_planes(picture: Yuv420, quality: int) -> bytes:
    """Baseline JFIF JPEG, 4:2:0, of ``picture`` at ``quality`` (1-100), libjpeg-turbo without colour conversion.

    TurboJPEG reads a luma plane of even width and height: a picture of an odd size is
    encoded from a copy whose extra row or column repeats the edge (as libjpeg pads an
    RGB picture), made here, after the masks: memory past the plane never reaches the JPEG.
    """
    y = picture.y
    h, w = y.shape
    if h % 2 or w % 2:
        padded = np.empty((h + h % 2, w + w % 2), np.uint8)
        padded[:h, :w] = y
        padded[h:, :w] = y[h - 1:]
        padded[:, w:] = padded[:, w - 1:w]
        y = padded[:h, :w]
    return simplejpeg.encode_jpeg_yuv_planes(y, picture.u, picture.v, quality=quality)
