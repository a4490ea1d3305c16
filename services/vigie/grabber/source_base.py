"""Base of the camera sources: a decode thread feeding the event loop.

Each source runs its blocking work (``av.open``, demux, decode, resize, rendering of
synthetic scenes, real-time pacing) in one dedicated daemon thread that hands
frames to the event loop through an ``asyncio.Queue``:

* files and synthetic scenes: bounded by a semaphore (back-pressure, no frame lost);
* live sources (rtsp, http, whep): bounded, the oldest frame is dropped when the consumer
  lags (``stats.dropped``), so a slow consumer never stalls the camera connection.

Clocks: files and synthetic scenes are timed by their PTS. Live sources whose
timestamps cannot be trusted are timed by arrival (:meth:`FrameSource._arrival`,
monotonic seconds since the source started): MJPEG over HTTP always, RTSP when its
PTS are missing or go backwards (``stats.clock`` says which).

Failures of live sources: :meth:`FrameSource._retry_later` (capped exponential
back-off, state "reconnecting") and :meth:`FrameSource._unauthorised_later`
(credentials refused: a slow, fixed retry every ``reconnect.unauthorised_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass

import numpy as np

import av

from vigie.core.cameras import CameraConfig, ReconnectConfig
from vigie.core.secrets import redact, redact_url
from .errors import SourceError
from .planes import Yuv420

__all__ = ["Backoff", "FrameSource", "SourceFrame", "SourceStats"]

log = logging.getLogger("vigie.grabber.sources")


@dataclass
class SourceStats:
    """Counters of one camera, written by its decode thread and the pipeline.

    Plain ints/floats: read them from any thread for metrics (values may be a
    frame behind). :meth:`snapshot` gives a dict.
    """

    decoded: int = 0  # frames decoded (before sampling); synthetic: frames of the scene clock
    sampled: int = 0  # frames kept by the sampler and handed to the event loop
    corrupt: int = 0  # corrupt packets or frames skipped
    skipped_before_keyframe: int = 0  # packets of a connection before its first keyframe, not decoded
    dropped: int = 0  # sampled frames dropped because the consumer lagged (live sources)
    published: int = 0  # frames yielded by CameraPipeline.frames()
    errors: int = 0  # frames lost in processing (mask, encode)
    connects: int = 0  # successful opens of the source
    reconnects: int = 0  # reconnection attempts scheduled (live sources)
    failures: int = 0  # failed attempts since the last stream that gave frames
    backoff_s: float = 0.0  # last back-off delay, seconds
    auth_failures: int = 0  # attempts refused with 401/403 (credentials)
    unauthorised: bool = False  # the last attempt was refused with 401/403
    stalls: int = 0  # connections dropped because no frame came within timeout_s
    clock: str = "pts"  # timeline of the frames: 'pts' (stream timestamps) or 'arrival' (wall clock)
    last_error: str = ""  # passwords of URLs redacted
    connected: bool = False

    def snapshot(self) -> dict[str, object]:
        """A copy of the counters as a dict."""
        return asdict(self)


class SourceFrame(tuple):
    """``(pts, image)``: pts in seconds (float), image (H, W, 3) uint8 RGB, C-contiguous
    and writable, or a writable :class:`~.planes.Yuv420` from a source opened ``planar``.
    Unpacks as a 2-tuple; also carries

    * ``src_size``: (width, height) of the frame as decoded and turned upright (display
      matrix), before resizing, pixels;
    * ``wall_ns``: wall clock when the frame was decoded (after real-time pacing for
      files), ns since the Unix epoch UTC.
    """

    def __new__(cls, pts: float, image: np.ndarray, src_size: tuple[int, int], wall_ns: int) -> "SourceFrame":
        self = super().__new__(cls, (pts, image))
        self.src_size = src_size
        self.wall_ns = wall_ns
        return self

    @property
    def pts(self) -> float:
        return self[0]

    @property
    def image(self) -> np.ndarray | Yuv420:
        return self[1]


class Backoff:
    """Capped exponential back-off with jitter: ``initial * factor**n``, at most ``max_s``,
    each delay spread by +-``jitter`` (relative). Delays in seconds."""

    def __init__(self, cfg: ReconnectConfig, rng: random.Random | None = None):
        self.cfg = cfg
        self.attempt = 0
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self.attempt = 0

    def next(self) -> float:
        c = self.cfg
        base = min(c.max_s, c.initial_s * c.factor ** min(self.attempt, 64))
        self.attempt += 1
        return min(c.max_s, self.spread(base))

    def spread(self, seconds: float) -> float:
        """``seconds`` spread by +-``jitter`` (relative), never negative."""
        return max(0.0, seconds * self._rng.uniform(1 - self.cfg.jitter, 1 + self.cfg.jitter))


def _reason(exc: BaseException) -> str:
    """A short message for an av/OS error (its strerror without the repeated URL), passwords redacted."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and 0 < errno < 4096:  # a POSIX errno, not an FFmpeg tag
        return redact(f"{text} ({type(exc).__name__}, errno {errno})")
    return redact(f"{text} ({type(exc).__name__})")


class _Stopped(Exception):
    """The consumer went away: the decode thread unwinds."""


class _End:
    __slots__ = ("error",)

    def __init__(self, error: BaseException | None):
        self.error = error


class FrameSource:
    """Async iterator of decoded frames of one camera (see :meth:`frames`).

    ``select``: called with each frame's pts (seconds) in the decode thread; frames
    for which it returns False are skipped before conversion. ``width``: resize to
    this width in pixels keeping the aspect ratio (height rounded), never upscaling;
    None keeps the decoded size. ``as_fast_as_possible`` disables real-time pacing
    of files and synthetic scenes. ``stats`` may be shared with a pipeline. ``planar``:
    sources decoded by FFmpeg (files, rtsp, http streams, WHEP) hand over
    :class:`~.planes.Yuv420` pictures instead of RGB (what the pipeline masks and encodes;
    MJPEG over HTTP and synthetic scenes give RGB whatever it says).
    """

    live = False

    def __init__(self, camera: CameraConfig, *, select: Callable[[float], bool] | None = None,
                 width: int | None = None, as_fast_as_possible: bool = False,
                 stats: SourceStats | None = None, queue_size: int = 4, planar: bool = False):
        self.camera = camera
        self.planar = planar
        self.select = select
        self.width = width
        self.pace = camera.realtime and not as_fast_as_possible and not self.live
        self.stats = stats if stats is not None else SourceStats()
        self.queue_size = max(1, queue_size)
        self._stop = threading.Event()
        self._sem = None if self.live else threading.Semaphore(self.queue_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._thread: threading.Thread | None = None
        self._pace_anchor: tuple[float, float] | None = None  # (monotonic s, pts s)
        self._pace_last = 0.0
        self._started = time.monotonic()
        #: the camera's source for messages: passwords replaced by ``***``
        self.safe_url = redact_url(camera.source)

    # -- consumer side (event loop) ---------------------------------------------
    def check(self) -> None:
        """Fail fast on errors a retry cannot fix. Raises :class:`SourceError`."""

    async def frames(self) -> AsyncIterator[SourceFrame]:
        """Yield :class:`SourceFrame` ``(pts_seconds, (H, W, 3) uint8 RGB)`` until the
        source ends (files without ``loop``, synthetic scenes with a ``duration``).
        Live sources never end: they reconnect with back-off.

        Raises :class:`SourceError` for a missing/unreadable file (at once, no
        retry). Iterate once per source; closing the iterator stops the thread.
        """
        if self._thread is not None:
            raise RuntimeError("FrameSource.frames() can only be iterated once")
        self.check()
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._thread = threading.Thread(target=self._thread_main, name=f"grab-{self.camera.id}", daemon=True)
        self._thread.start()
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                if self._sem is not None:
                    self._sem.release()
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Ask the decode thread to stop (it exits at its next check, or when a
        blocking read times out). Safe to call from any thread, more than once."""
        self._stop.set()
        if self._sem is not None:
            self._sem.release()

    def _deliver(self, item: object) -> None:  # on the event loop
        q = self._queue
        if self.live and not isinstance(item, _End):
            while q.qsize() >= self.queue_size:
                q.get_nowait()
                self.stats.dropped += 1
        q.put_nowait(item)

    # -- producer side (decode thread) ------------------------------------------
    def _produce(self) -> None:
        raise NotImplementedError

    def _thread_main(self) -> None:
        error: BaseException | None = None
        try:
            self._produce()
        except _Stopped:
            pass
        except SourceError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - reported to the consumer
            log.exception("camera %s: decode thread failed", self.camera.id)
            error = SourceError(self.camera.id, redact(f"unexpected error: {exc!r}"))
        finally:
            self.stats.connected = False
            with contextlib.suppress(RuntimeError):  # event loop already closed
                self._loop.call_soon_threadsafe(self._deliver, _End(error))

    def _arrival(self) -> float:
        """Arrival time of a frame: monotonic seconds since this source was made (a
        timeline that only moves forward, across reconnections)."""
        return time.monotonic() - self._started

    def _retry_later(self, backoff: Backoff, reason: str) -> None:
        """Count a failed attempt of a live source (``reason`` without the password) and wait
        the next back-off delay. Raises ``_Stopped`` when the source is closed meanwhile."""
        self._check_stop()
        delay = backoff.next()
        st = self.stats
        st.reconnects += 1
        st.failures += 1
        st.backoff_s = delay
        st.unauthorised = False
        st.last_error = redact(f"camera {self.camera.id}: {reason}")
        log.warning("camera %s: %s; reconnect attempt %d in %.2f s", self.camera.id, redact(reason),
                    backoff.attempt, delay)
        self._wait(delay)

    def _unauthorised_later(self, backoff: Backoff, reason: str) -> None:
        """The camera refused the credentials (401/403): report it, count it, and wait
        ``reconnect.unauthorised_s`` (jittered) before the next attempt instead of the
        back-off: new credentials need a person, hammering the camera may lock the account."""
        self._check_stop()
        delay = backoff.spread(self.camera.reconnect.unauthorised_s)
        st = self.stats
        first = not st.unauthorised
        st.auth_failures += 1
        st.failures += 1
        st.backoff_s = delay
        st.unauthorised = True
        st.last_error = redact(f"camera {self.camera.id}: unauthorised: {reason}; check the user and password "
                               f"of its source; next attempt in {delay:.0f} s")
        (log.error if first else log.warning)(
            "camera %s: unauthorised (%s) at %s; attempt %d, next in %.0f s", self.camera.id, redact(reason),
            self.safe_url, st.auth_failures, delay)
        self._wait(delay)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self._stop.wait(seconds):
            raise _Stopped
        self._check_stop()

    def _pace_to(self, pts: float) -> None:
        """Sleep until the wall-clock instant of ``pts`` (re-anchored on discontinuities)."""
        now = time.monotonic()
        anchor = self._pace_anchor
        if anchor is None or pts < self._pace_last or pts - self._pace_last > 5.0:
            self._pace_anchor = anchor = (now, pts)
        self._pace_last = pts
        self._wait(anchor[0] + (pts - anchor[1]) - now)

    def _emit(self, pts: float, image: np.ndarray | Yuv420, src_size: tuple[int, int]) -> None:
        if self.pace:
            self._pace_to(pts)
        if self._sem is not None:
            while not self._sem.acquire(timeout=0.25):
                self._check_stop()
        self._check_stop()
        if isinstance(image, np.ndarray) and (not image.flags.c_contiguous or not image.flags.writeable):
            image = np.array(image, dtype=np.uint8, order="C")
        self.stats.sampled += 1
        try:
            self._loop.call_soon_threadsafe(self._deliver, SourceFrame(pts, image, src_size, time.time_ns()))
        except RuntimeError:
            raise _Stopped from None

    def _out_size(self, src_w: int, src_h: int) -> tuple[int, int]:
        if self.width is None or src_w <= self.width:
            return src_w, src_h
        return self.width, max(1, round(src_h * self.width / src_w))

    def _emit_rgb(self, pts: float, image: np.ndarray, src_size: tuple[int, int]) -> None:
        """Emit an (H, W, 3) uint8 RGB image decoded at any size >= the output size, resized
        to :meth:`_out_size` of ``src_size`` (area averaging) when it differs."""
        dw, dh = self._out_size(*src_size)
        if image.shape[1] != dw or image.shape[0] != dh:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            image = frame.reformat(width=dw, height=dh, interpolation="AREA").to_ndarray()
        self._emit(pts, image, src_size)
