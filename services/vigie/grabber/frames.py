"""The per-camera pipeline: source -> sampler -> resize -> checks -> privacy masks -> JPEG.

Frames decoded by FFmpeg (files, rtsp, http streams, WHEP) travel as full-range YUV 4:2:0
planes from the decoder to the JPEG (:mod:`.planes`): only the frames the sampler keeps are
scaled and converted, in one libswscale pass, and never to RGB; MJPEG over HTTP and synthetic
scenes give RGB.

Privacy masks are applied here, before a frame leaves the process; a frame whose
masks cannot be applied is dropped (``stats.errors``), never published unmasked.
Masks are drawn on a reference frame size and scaled to every size that arrives
(:class:`~.masking.CameraMasks`); a change of the source's size is logged and counted.

Frames that cannot be published are refused one by one, counted, and the camera goes
on: degenerate sizes (1x1, 2x1080...) and JPEGs over the broker's record size that no
lower quality brings under it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import simplejpeg

from vigie.core.cameras import CameraConfig
from vigie.core.kafka import MAX_RECORD_BYTES
from .errors import SourceError
from .masking import CameraMasks, apply_masks
from .planes import PlanarMask, Yuv420, apply_masks_planes, encode_planes
from .sampler import PtsSampler
from .sources import FrameSource, SourceFrame, SourceStats, open_source

__all__ = ["CapturedFrame", "CameraPipeline", "PipelineStats", "JPEG_QUALITY", "MAX_JPEG_BYTES",
           "degenerate_reason", "encode_within"]

log = logging.getLogger("vigie.grabber.frames")

JPEG_QUALITY = 80
#: Lower qualities tried, in order, for a JPEG over its size limit.
FALLBACK_QUALITIES = (60, 40, 25, 10)
#: Bytes kept for the rest of a Frame record (camera id, mask names, Kafka record overhead).
FRAME_ENVELOPE_BYTES = 64 * 1024
#: Largest JPEG of a published frame: its record stays within the producer's and broker's limit.
MAX_JPEG_BYTES = MAX_RECORD_BYTES - FRAME_ENVELOPE_BYTES
#: Degenerate frames in a row after which a camera fails (20 s at 5 fps): its stream is unusable.
DEGENERATE_IN_A_ROW = 100


@dataclass
class PipelineStats(SourceStats):
    """:class:`~.sources.SourceStats` plus the counters and sizes of the pipeline's own stages."""

    degenerate: int = 0  # frames refused for their size (too small, absurd aspect ratio)
    reencoded: int = 0  # frames published at a lower JPEG quality to fit the record size
    oversize_dropped: int = 0  # frames dropped: over the record size even at the lowest quality
    resolution_changes: int = 0  # changes of the source's (upright) size after the first frame
    source_size: list[int] | None = None  # [width, height] of the last frame's upright source
    masks_reference: list[int] | None = None  # [width, height] the privacy masks are drawn on
    masks_reference_assumed: bool = False  # True: no privacy_masks_reference_size, first frame's size used


def degenerate_reason(size: tuple[int, int], min_side: int, max_aspect: float) -> str | None:
    """Why a frame of ``size`` = (width, height) pixels must not be published, or None when it may.

    Refused: a side under ``min_side`` pixels, or a longer side over ``max_aspect`` times
    the shorter one (2x1080 is 540:1; panoramic cameras reach about 4:1).
    """
    w, h = size
    if min(w, h) < min_side:
        return f"{w}x{h} frame under the minimum size of {min_side} pixels per side (min_frame_size)"
    if max(w, h) > max_aspect * min(w, h):
        return f"{w}x{h} frame with an aspect ratio over {max_aspect:g}:1 (max_aspect_ratio)"
    return None


def encode_within(image: np.ndarray | Yuv420, quality: int, max_bytes: int) -> tuple[bytes | None, int]:
    """JPEG of ``image`` ((H, W, 3) uint8 RGB or a :class:`~.planes.Yuv420`; 4:2:0) of at most ``max_bytes``:
    ``(jpeg, quality used)``.

    Tries ``quality`` (1-100), then each of :data:`FALLBACK_QUALITIES` below it; returns
    ``(None, lowest quality tried)`` when even that is too big. Sizes: a 3840x2160 frame of
    uniform noise is 5.5 MB at quality 80, 3.9 MB at 60, 1.3 MB at 15.
    """
    for q in (quality, *(q for q in FALLBACK_QUALITIES if q < quality)):
        if isinstance(image, Yuv420):
            jpeg = encode_planes(image, q)
        else:
            jpeg = simplejpeg.encode_jpeg(image, quality=q, colorspace="RGB", colorsubsampling="420")
        if len(jpeg) <= max_bytes:
            return jpeg, q
    return None, q


def _power_of_ten(n: int) -> bool:
    """True for 1, 10, 100...: when to log a recurring problem again."""
    return n > 0 and 10 ** round(math.log10(n)) == n


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
    * ``masks_applied``: names of the privacy masks blacked out in this frame;
    * ``source_width``, ``source_height``: size of the frame as decoded (upright), before resizing, pixels.
    """

    camera_id: str
    seq: int
    capture_ns: int
    pts: float
    width: int
    height: int
    jpeg: bytes
    masks_applied: list[str] = field(default_factory=list)
    source_width: int = 0
    source_height: int = 0


class CameraPipeline:
    """Frames of one camera, ready to publish.

    ``camera``: its configuration; ``as_fast_as_possible``: ignore real-time pacing
    of files and synthetic scenes (benchmarks, tests); ``jpeg_quality``: 1-100;
    ``max_jpeg_bytes``: largest JPEG published (default :data:`MAX_JPEG_BYTES`, what
    fits the broker's record size). ``stats`` (a :class:`PipelineStats`: decoded,
    sampled, corrupt, skipped before a keyframe, dropped, degenerate, re-encoded,
    oversize dropped, published, errors, reconnects, resolution changes, source size...)
    is live and readable at any time for metrics.
    """

    def __init__(self, camera: CameraConfig, as_fast_as_possible: bool = False, *,
                 jpeg_quality: int = JPEG_QUALITY, max_jpeg_bytes: int = MAX_JPEG_BYTES):
        self.camera = camera
        self.as_fast_as_possible = as_fast_as_possible
        self.jpeg_quality = jpeg_quality
        self.max_jpeg_bytes = max_jpeg_bytes
        self.stats = PipelineStats()
        self.sampler = PtsSampler(camera.fps)
        self.masks = CameraMasks(camera)
        self.mask_names = self.masks.names
        self.source: FrameSource = open_source(
            camera, select=self.sampler.keep, width=camera.width,
            as_fast_as_possible=as_fast_as_possible, stats=self.stats, planar=True,
        )
        self._planar: tuple[np.ndarray | None, PlanarMask | None] = (None, None)  # (raster, prepared for planes)
        self._seq = 0
        self._degenerate_in_a_row = 0
        self._last_degenerate = ""

    def _refuse_degenerate(self, frame: SourceFrame) -> bool:
        """True (counted, logged now and then) when the frame's size is degenerate.

        Raises :class:`SourceError` after :data:`DEGENERATE_IN_A_ROW` such frames in a row.
        """
        cam, stats = self.camera, self.stats
        why = degenerate_reason(frame.src_size, cam.min_frame_size, cam.max_aspect_ratio)
        if why is None:
            self._degenerate_in_a_row = 0
            return False
        stats.degenerate += 1
        self._degenerate_in_a_row += 1
        self._last_degenerate = why
        stats.last_error = f"camera {cam.id}: {why}: refused"
        if self._degenerate_in_a_row >= DEGENERATE_IN_A_ROW:
            raise SourceError(cam.id, f"{self._degenerate_in_a_row} degenerate frames in a row, the last a {why}")
        if _power_of_ten(stats.degenerate):
            log.warning("camera %s: %s: refused (%d so far)", cam.id, why, stats.degenerate, extra={"camera": cam.id})
        return True

    def _track_size(self, src_size: tuple[int, int]) -> None:
        """Record the source's size; log and count a change (privacy masks follow it)."""
        stats, size = self.stats, list(src_size)
        if stats.source_size == size:
            return
        if stats.source_size is not None:
            stats.resolution_changes += 1
            ref = self.masks.reference
            masks = f"; privacy masks scaled from their {ref[0]}x{ref[1]} reference" if ref and self.mask_names else ""
            log.warning("camera %s: source resolution changed from %dx%d to %dx%d%s", self.camera.id,
                        *stats.source_size, *size, masks, extra={"camera": self.camera.id})
        stats.source_size = size

    def _process(self, frame: SourceFrame) -> tuple[int, int, bytes] | None:
        """Check, mask and encode (runs in a worker thread). None when the frame must be dropped (counted)."""
        if self._refuse_degenerate(frame):
            return None
        self._track_size(frame.src_size)
        image = frame.image
        h, w = image.shape[:2]
        try:
            mask = self.masks.raster(frame.src_size, (w, h))
            if mask is not None:
                self.stats.masks_reference = list(self.masks.reference)
                self.stats.masks_reference_assumed = self.masks.assumed
                if isinstance(image, Yuv420):
                    if self._planar[0] is not mask:  # the raster is cached while the sizes stay
                        self._planar = (mask, PlanarMask.of(mask))
                    apply_masks_planes(image, self._planar[1])
                else:
                    apply_masks(image, mask)
            jpeg, quality = encode_within(image, self.jpeg_quality, self.max_jpeg_bytes)
        except SourceError:  # a mask outside the picture: the camera fails, nothing is published
            raise
        except Exception:  # noqa: BLE001 - fail closed: drop the frame, count it
            self.stats.errors += 1
            log.exception("camera %s: cannot mask/encode frame pts=%.3f; dropped", self.camera.id, frame.pts)
            return None
        if jpeg is None:
            self.stats.oversize_dropped += 1
            self.stats.last_error = (f"camera {self.camera.id}: a {w}x{h} frame is over {self.max_jpeg_bytes} "
                                     f"bytes even at JPEG quality {quality}: dropped")
            if _power_of_ten(self.stats.oversize_dropped):
                log.warning("%s (%d so far)", self.stats.last_error, self.stats.oversize_dropped,
                            extra={"camera": self.camera.id})
            return None
        if quality != self.jpeg_quality:
            self.stats.reencoded += 1
            if _power_of_ten(self.stats.reencoded):
                log.warning("camera %s: a %dx%d frame published at JPEG quality %d instead of %d to fit %d bytes "
                            "(%d so far)", self.camera.id, w, h, quality, self.jpeg_quality, self.max_jpeg_bytes,
                            self.stats.reencoded, extra={"camera": self.camera.id})
        return w, h, jpeg

    async def frames(self) -> AsyncIterator[CapturedFrame]:
        """Yield :class:`CapturedFrame` objects at about ``camera.fps`` (by PTS).

        Ends when a file ends (unless ``loop``) or a synthetic ``duration`` elapses;
        live sources reconnect forever. Raises :class:`~.errors.SourceError` when a
        file is missing or unreadable, when a privacy mask covers no pixel of the
        first frame of a camera without ``privacy_masks_reference_size`` (before any
        frame is yielded), or when frames are degenerate (every frame of a file that
        ended, or :data:`DEGENERATE_IN_A_ROW` in a row). Decoding, masking and encoding
        run in threads; the event loop only hands frames over.
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
                    source_width=frame.src_size[0], source_height=frame.src_size[1],
                )
                self._seq += 1
                self.stats.published += 1
                yield out
        finally:
            await frames.aclose()
        if self.stats.published == 0 and self.stats.degenerate > 0:
            raise SourceError(self.camera.id, f"stream ended and every frame was degenerate "
                                              f"({self.stats.degenerate}), the last a {self._last_degenerate}")

    def close(self) -> None:
        """Stop the decode thread (also done when the ``frames()`` iterator is closed)."""
        self.source.close()

    @staticmethod
    def decode_jpeg(jpeg: bytes) -> np.ndarray:
        """Decode a published JPEG to (H, W, 3) uint8 RGB (tests, debugging)."""
        return simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
