"""Display orientation: frames of a camera mounted sideways or upside down published upright.

A stream says how its pictures must be turned for display in a display matrix: the
``tkhd`` matrix of MP4/MOV (ISO/IEC 14496-12 8.3.2), the display orientation SEI of
H.264/HEVC. FFmpeg hands it over as frame side data ``AV_FRAME_DATA_DISPLAYMATRIX``:
nine int32, the 2x2 part in 16.16 fixed point, applied to row vectors
(``x' = a*x + c*y``, ``y' = b*x + d*y`` with ``[a b; c d] = [m0 m1; m3 m4]``, see
libavutil/display.h). The grabber honours its rotation by multiples of 90 degrees and
its mirroring (the eight EXIF orientations), as ``ffmpeg``'s autorotate does; another
angle is rounded to the nearest multiple of 90 degrees, with a warning.

Everything downstream (sizes, resizing, privacy masks) sees the upright picture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .planes import Yuv420, to_planes

__all__ = ["Orientation", "Upright", "orientation_from_matrix", "rotation_matrix"]

log = logging.getLogger("vigie.grabber.orientation")

_DISPLAYMATRIX = av.sidedata.sidedata.Type.DISPLAYMATRIX


@dataclass(frozen=True, slots=True)
class Orientation:
    """How to turn a decoded picture upright: the signed permutation ``[a b; c d]`` of the display matrix.

    Each entry is -1, 0 or 1; either ``a == d == 0`` (the picture is transposed: a
    quarter turn, possibly mirrored) or ``b == c == 0``.
    """

    a: int = 1
    b: int = 0
    c: int = 0
    d: int = 1

    @property
    def identity(self) -> bool:
        """True when the picture is already upright (nothing to do)."""
        return (self.a, self.b, self.c, self.d) == (1, 0, 0, 1)

    @property
    def transposed(self) -> bool:
        """True when width and height swap (a quarter turn)."""
        return self.a == 0

    def upright_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the upright picture of a ``width`` x ``height`` decoded one."""
        return (height, width) if self.transposed else (width, height)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The upright (H', W', ...) C-contiguous copy of ``image`` (H, W, ...), or ``image`` itself when upright."""
        if self.identity:
            return image
        if self.transposed:  # x' = c*y, y' = b*x: rows of the result follow x
            out = image.swapaxes(0, 1)[::self.b, ::self.c]
        else:  # x' = a*x, y' = d*y
            out = image[::self.d, ::self.a]
        return np.ascontiguousarray(out)

    def describe(self) -> str:
        """Words for logs, e.g. 'rotated 90 degrees counter-clockwise' or 'mirrored left-right'."""
        m = (self.a, self.b, self.c, self.d)
        turns = {(1, 0, 0, 1): "upright", (0, -1, 1, 0): "rotated 90 degrees counter-clockwise",
                 (-1, 0, 0, -1): "rotated 180 degrees", (0, 1, -1, 0): "rotated 90 degrees clockwise",
                 (-1, 0, 0, 1): "mirrored left-right", (1, 0, 0, -1): "mirrored top-bottom",
                 (0, 1, 1, 0): "transposed", (0, -1, -1, 0): "anti-transposed"}
        return turns[m]


IDENTITY = Orientation()
_CANDIDATES = [Orientation(a, b, c, d) for a, b, c, d in (
    (1, 0, 0, 1), (0, -1, 1, 0), (-1, 0, 0, -1), (0, 1, -1, 0),
    (-1, 0, 0, 1), (1, 0, 0, -1), (0, 1, 1, 0), (0, -1, -1, 0))]


def orientation_from_matrix(matrix: bytes | np.ndarray) -> tuple[Orientation, bool]:
    """The :class:`Orientation` of a display matrix, and whether it is exact.

    ``matrix``: 36 bytes (nine native int32, as in FFmpeg's side data) or an array of
    nine numbers. The nearest of the eight quarter-turn/mirror orientations is chosen
    (largest inner product with the normalised 2x2 part); ``exact`` is False for another
    angle or a degenerate matrix. Raises ``ValueError`` for a buffer of another size.
    """
    m = np.frombuffer(matrix, dtype=np.int32) if isinstance(matrix, bytes | bytearray | memoryview) \
        else np.asarray(matrix, dtype=np.float64)
    if m.size != 9:
        raise ValueError(f"a display matrix has 9 entries, got {m.size}")
    part = np.array([[m[0], m[1]], [m[3], m[4]]], dtype=np.float64)
    norm = np.linalg.norm(part)
    if norm == 0:
        return IDENTITY, False
    part /= norm / np.sqrt(2)  # a rotation or a mirror has norm sqrt(2)
    scores = [float(np.dot(part.ravel(), (o.a, o.b, o.c, o.d))) for o in _CANDIDATES]
    best = int(np.argmax(scores))
    return _CANDIDATES[best], scores[best] > 2 - 1e-3


def rotation_matrix(degrees: float) -> bytes | None:
    """The display matrix (36 bytes, native int32) of a turn of ``degrees`` counter-clockwise, None for 0."""
    if not degrees:
        return None
    r = np.radians(degrees)
    one = 1 << 16
    return np.array([round(np.cos(r) * one), round(-np.sin(r) * one), 0, round(np.sin(r) * one),
                     round(np.cos(r) * one), 0, 0, 0, 1 << 30], dtype=np.int32).tobytes()


class Upright:
    """Turns decoded frames of one camera upright at their output size (called in its decode thread).

    Logs once per connection when the stream asks for a turn, and warns when its angle
    is not a multiple of 90 degrees. PyAV's ``frame.side_data`` ties the frame in a
    reference cycle (frame -> container -> frame): the frame and its decoder buffer then
    wait for the garbage collector (0.15-0.3 ms more per 720x480 frame, measured, and
    memory held). So the whole matrix is read on the first frame, whenever the cheap
    ``frame.rotation`` changes, and every :attr:`REREAD`-th frame (a mirroring alone does
    not change the rotation); other frames reuse it.
    """

    REREAD = 50

    def __init__(self, camera_id: str):
        self.camera_id = camera_id
        self._matrix: bytes | None = None
        self._orientation = IDENTITY
        self._rotation: float | None = None
        self._frames = 0
        self._reformatter = VideoReformatter()  # reused: libswscale keeps its context while sizes stay

    def _read_matrix(self, frame: av.VideoFrame) -> bytes | None:
        try:
            side = frame.side_data.get(_DISPLAYMATRIX)
            return bytes(side) if side is not None else None
        except ValueError:  # side data of a type this PyAV does not know (TIFF's EXIF): its rotation, no mirror
            return rotation_matrix(frame.rotation)

    def orientation(self, frame: av.VideoFrame) -> Orientation:
        """The :class:`Orientation` asked for by ``frame``'s display matrix side data (upright when none)."""
        rotation, self._frames = frame.rotation, self._frames + 1
        if rotation == self._rotation and self._frames % self.REREAD:
            return self._orientation
        self._rotation = rotation
        data = self._read_matrix(frame)
        if data != self._matrix:
            self._matrix = data
            orientation, exact = orientation_from_matrix(data) if data else (IDENTITY, True)
            self._orientation = orientation
            if not exact:
                log.warning("camera %s: display matrix %s is not a quarter turn nor a mirror; published %s",
                            self.camera_id, np.frombuffer(data, dtype=np.int32).tolist(),
                            orientation.describe(), extra={"camera": self.camera_id})
            elif data is not None:
                log.info("camera %s: the stream's display matrix asks for its frames %s; published upright",
                         self.camera_id, orientation.describe(), extra={"camera": self.camera_id})
        return self._orientation

    def _sizes(self, frame: av.VideoFrame, out_size: Callable[[int, int], tuple[int, int]]
               ) -> tuple[Orientation, tuple[int, int], tuple[int, int]]:
        """(orientation, upright source size, size to scale the decoded picture to before turning it)."""
        orientation = self.orientation(frame)
        src_size = orientation.upright_size(frame.width, frame.height)
        # a transposition is its own inverse
        return orientation, src_size, orientation.upright_size(*out_size(*src_size))

    def __call__(self, frame: av.VideoFrame,
                 out_size: Callable[[int, int], tuple[int, int]]) -> tuple[np.ndarray, tuple[int, int]]:
        """``(image, src_size)``: ``frame`` upright as (H, W, 3) uint8 RGB, C-contiguous, at ``out_size(w, h)``
        of its upright size ``src_size`` = (w, h), pixels. Resizing (AREA) happens before turning."""
        orientation, src_size, coded = self._sizes(frame, out_size)
        if coded != (frame.width, frame.height):
            # scale in the decoder's pixel format, then convert: faster than one combined
            # swscale pass; AREA averages properly when downscaling
            frame = self._reformatter.reformat(frame, width=coded[0], height=coded[1], interpolation="AREA")
        return orientation.apply(frame.to_ndarray(format="rgb24")), src_size

    def planes(self, frame: av.VideoFrame,
               out_size: Callable[[int, int], tuple[int, int]]) -> tuple[Yuv420, tuple[int, int]]:
        """``(picture, src_size)`` as :meth:`__call__`, the picture a full-range :class:`~.planes.Yuv420`
        (scaled and converted in one libswscale pass, no RGB): what the grabber masks and encodes."""
        orientation, src_size, coded = self._sizes(frame, out_size)
        picture = to_planes(frame, *coded, self._reformatter)
        if not orientation.identity:
            picture = Yuv420(*(orientation.apply(p) for p in (picture.y, picture.u, picture.v)))
        return picture, src_size
