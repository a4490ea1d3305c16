"""The per-camera pipeline: source -> sampler -> resize -> privacy masks -> JPEG.

Privacy masks are applied here, before a frame leaves the process; a frame whose
masks cannot be applied is dropped (``stats.errors``), never published unmasked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import simplejpeg

from vigie.core.cameras import CameraConfig
from vigie.core.geometry import covers_any_pixel
from .errors import SourceError
from .masking import apply_masks, rasterize_masks
from .sampler import PtsSampler
from .sources import FrameSource, SourceFrame, SourceStats, open_source

__all__ = ["CapturedFrame", "CameraPipeline", "JPEG_QUALITY"]

log = logging.getLogger("vigie.grabber.frames")

JPEG_QUALITY = 80


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One sampled, resized, masked and JPEG-encoded frame of a camera.

    * ``camera_id``: the camera's slug;
    * ``seq``: per-camera sequence number, starts at 0, +1 per published frame;
    * ``capture_ns``: wall clock at decode (live) or at paced playback (files), ns
      since the Unix epoch UTC;
    * ``pts``: presentation time in the stream, seconds (increasing within a
      connection; may restart after a reconnect);
    * ``width``, ``height``: JPEG size in pixels (after resizing);
    * ``jpeg``: baseline JPEG bytes, RGB, 4:2:0;
    * ``masks_applied``: names of the privacy masks blacked out in this frame.
    """

    camera_id: str
    seq: int
    capture_ns: int
    pts: float
    width: int
    height: int
    jpeg: bytes
    masks_applied: list[str] = field(default_factory=list)


class CameraPipeline:
    """Frames of one camera, ready to publish.

    ``camera``: its configuration; ``as_fast_as_possible``: ignore real-time pacing
    of files and synthetic scenes (benchmarks, tests). ``stats`` (a
    :class:`~.sources.SourceStats`: decoded, sampled, corrupt, dropped, published,
    errors, reconnects...) is live and readable at any time for metrics.
    """

    def __init__(self, camera: CameraConfig, as_fast_as_possible: bool = False, *,
                 jpeg_quality: int = JPEG_QUALITY):
        self.camera = camera
        self.as_fast_as_possible = as_fast_as_possible
        self.jpeg_quality = jpeg_quality
        self.stats = SourceStats()
        self.sampler = PtsSampler(camera.fps)
        self.mask_names = camera.mask_names()
        self.source: FrameSource = open_source(
            camera, select=self.sampler.keep, width=camera.width,
            as_fast_as_possible=as_fast_as_possible, stats=self.stats,
        )
        self._seq = 0
        self._mask_key: tuple | None = None
        self._mask: np.ndarray | None = None

    def _mask_for(self, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
        """(H, W) bool privacy mask for this camera at these sizes, rasterised once per size.

        Raises :class:`SourceError` when a mask covers no pixel of frames of these sizes
        (coordinates outside the picture): a mask that masks nothing is a privacy risk.
        """
        key = (src_size, dst_size)
        if key != self._mask_key:
            for name, mask in zip(self.mask_names, self.camera.privacy_masks):
                if not covers_any_pixel(mask, src_size, dst_size):
                    scaled = f" (published at {dst_size[0]}x{dst_size[1]})" if dst_size != src_size else ""
                    raise SourceError(self.camera.id, (
                        f"privacy mask {name!r} of camera {self.camera.id!r} covers no pixel of its "
                        f"{src_size[0]}x{src_size[1]} frames{scaled}: check its coordinates "
                        "(pixels of the source frame, origin top-left)"))
            self._mask = rasterize_masks(self.camera.privacy_masks, src_size, dst_size)
            self._mask_key = key
        return self._mask

    def _process(self, frame: SourceFrame) -> tuple[int, int, bytes] | None:
        """Mask and encode (runs in a worker thread). None when the frame must be dropped."""
        image = frame.image
        h, w = image.shape[:2]
        try:
            if self.camera.privacy_masks:
                apply_masks(image, self._mask_for(frame.src_size, (w, h)))
            jpeg = simplejpeg.encode_jpeg(image, quality=self.jpeg_quality, colorspace="RGB", colorsubsampling="420")
        except SourceError:  # a mask outside the picture: the camera fails, nothing is published
            raise
        except Exception:  # noqa: BLE001 - fail closed: drop the frame, count it
            self.stats.errors += 1
            log.exception("camera %s: cannot mask/encode frame pts=%.3f; dropped", self.camera.id, frame.pts)
            return None
        return w, h, jpeg

    async def frames(self) -> AsyncIterator[CapturedFrame]:
        """Yield :class:`CapturedFrame` objects at about ``camera.fps`` (by PTS).

        Ends when a file ends (unless ``loop``) or a synthetic ``duration`` elapses;
        live sources reconnect forever. Raises :class:`~.errors.SourceError` when a
        file is missing or unreadable, or when a privacy mask covers no pixel of the
        first frame (before any frame is yielded). Decoding, masking and encoding run in
        threads; the event loop only hands frames over.
        """
        frames = self.source.frames()
        try:
            async for frame in frames:
                done = await asyncio.to_thread(self._process, frame)
                if done is None:
                    continue
                w, h, jpeg = done
                out = CapturedFrame(
                    camera_id=self.camera.id, seq=self._seq, capture_ns=frame.wall_ns, pts=frame.pts,
                    width=w, height=h, jpeg=jpeg, masks_applied=list(self.mask_names),
                )
                self._seq += 1
                self.stats.published += 1
                yield out
        finally:
            await frames.aclose()

    def close(self) -> None:
        """Stop the decode thread (also done when the ``frames()`` iterator is closed)."""
        self.source.close()

    @staticmethod
    def decode_jpeg(jpeg: bytes) -> np.ndarray:
        """Decode a published JPEG to (H, W, 3) uint8 RGB (tests, debugging)."""
        return simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
