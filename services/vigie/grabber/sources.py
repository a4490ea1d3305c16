"""Camera sources: decoded frames as an async iterator, decoding off the event loop.

Each source runs its blocking work (``av.open``, demux, decode, resize, rendering of
synthetic scenes, real-time pacing) in one dedicated daemon thread that hands
frames to the event loop through an ``asyncio.Queue``:

* files and synthetic scenes: bounded by a semaphore (back-pressure, no frame lost);
* live sources (rtsp, http): bounded, the oldest frame is dropped when the consumer
  lags (``stats.dropped``), so a slow consumer never stalls the camera connection.

Sampling (a ``select(pts) -> bool`` callable, e.g. :class:`~.sampler.PtsSampler`)
and resizing happen in that thread before the RGB conversion, so frames that are
not kept cost only their decode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass

import av
import numpy as np

from .config import CameraConfig, ReconnectConfig
from .errors import SourceError
from .synthetic import SyntheticScene, parse_synthetic_url

__all__ = ["Backoff", "FrameSource", "SourceFrame", "SourceStats", "open_source"]

log = logging.getLogger("vigie.grabber.sources")



def _ffmpeg_major() -> int:
    try:
        return int(str(av.ffmpeg_version_info).lstrip("n").split(".")[0])
    except ValueError:
        return 8


_FFMPEG_MAJOR = _ffmpeg_major()
_MAX_ERRORS_IN_A_ROW = 200  # consecutive corrupt packets before a stream is considered broken


@dataclass
class SourceStats:
    """Counters of one camera, written by its decode thread and the pipeline.

    Plain ints/floats: read them from any thread for metrics (values may be a
    frame behind). :meth:`snapshot` gives a dict.
    """

    decoded: int = 0  # frames decoded (before sampling); synthetic: frames of the scene clock
    sampled: int = 0  # frames kept by the sampler and handed to the event loop
    corrupt: int = 0  # corrupt packets or frames skipped
    dropped: int = 0  # sampled frames dropped because the consumer lagged (live sources)
    published: int = 0  # frames yielded by CameraPipeline.frames()
    errors: int = 0  # frames lost in processing (mask, encode)
    connects: int = 0  # successful opens of the source
    reconnects: int = 0  # reconnection attempts scheduled (live sources)
    failures: int = 0  # failed attempts since the last stream that gave frames
    backoff_s: float = 0.0  # last back-off delay, seconds
    last_error: str = ""
    connected: bool = False

    def snapshot(self) -> dict[str, object]:
        """A copy of the counters as a dict."""
        return asdict(self)


class SourceFrame(tuple):
    """``(pts, image)``: pts in seconds (float), image (H, W, 3) uint8 RGB, C-contiguous
    and writable. Unpacks as a 2-tuple; also carries

    * ``src_size``: (width, height) of the frame as decoded, before resizing, pixels;
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
    def image(self) -> np.ndarray:
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
        return min(c.max_s, max(0.0, base * self._rng.uniform(1 - c.jitter, 1 + c.jitter)))


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
    of files and synthetic scenes. ``stats`` may be shared with a pipeline.
    """

    live = False

    def __init__(self, camera: CameraConfig, *, select: Callable[[float], bool] | None = None,
                 width: int | None = None, as_fast_as_possible: bool = False,
                 stats: SourceStats | None = None, queue_size: int = 4):
        self.camera = camera
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
            error = SourceError(self.camera.id, f"unexpected error: {exc!r}")
        finally:
            self.stats.connected = False
            try:
                self._loop.call_soon_threadsafe(self._deliver, _End(error))
            except RuntimeError:
                pass  # event loop closed

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

    def _emit(self, pts: float, image: np.ndarray, src_size: tuple[int, int]) -> None:
        if self.pace:
            self._pace_to(pts)
        if self._sem is not None:
            while not self._sem.acquire(timeout=0.25):
                self._check_stop()
        self._check_stop()
        if not image.flags.c_contiguous or not image.flags.writeable:
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


class AvSource(FrameSource):
    """A file, or a live rtsp/http stream, decoded with PyAV."""

    def __init__(self, camera: CameraConfig, **kwargs):
        kind = camera.kind
        self.live = kind in ("rtsp", "http")
        super().__init__(camera, **kwargs)
        self.kind = kind
        src = camera.source
        self.url = src[len("file://"):] if kind == "file" and src.startswith("file://") else src

    def check(self) -> None:
        """Raises :class:`SourceError` when a file source is missing or not a file."""
        if self.kind == "file":
            if not os.path.exists(self.url):
                raise SourceError(self.camera.id, f"file not found: {self.url}")
            if not os.path.isfile(self.url):
                raise SourceError(self.camera.id, f"not a regular file: {self.url}")

    def _open(self) -> av.container.InputContainer:
        t = self.camera.timeout_s
        if self.kind == "file":
            return av.open(self.url, mode="r")
        us = str(int(t * 1_000_000))
        if self.kind == "rtsp":
            # ffmpeg >= 5: 'timeout' is the socket I/O timeout in us ('stimeout' before)
            options = {"rtsp_transport": "tcp", "allowed_media_types": "video",
                       ("timeout" if _FFMPEG_MAJOR >= 5 else "stimeout"): us}
        else:
            options = {"timeout": us, "rw_timeout": us}
        # PyAV's own timeout (interrupt callback) also bounds open and each read
        return av.open(self.url, mode="r", options=options, timeout=(t, t))

    def _produce(self) -> None:
        cam, stats = self.camera, self.stats
        backoff = Backoff(cam.reconnect)
        offset = 0.0  # added to pts when a file loops, so pts keep increasing
        while True:
            self._check_stop()
            try:
                container = self._open()
            except Exception as exc:  # noqa: BLE001 - av raises many types (OSError, FFmpegError...)
                if not self.live:
                    raise SourceError(cam.id, f"cannot open file {self.url}: {exc}") from None
                self._retry_later(backoff, f"cannot open {self.url}: {exc}")
                continue
            stats.connects += 1
            stats.connected = True
            if self.live:
                log.info("camera %s: connected to %s", cam.id, self.url)
            try:
                got, last_pts, frame_dur, error = self._decode(container, offset)
            finally:
                stats.connected = False
                container.close()
            if self.live:
                if got:
                    backoff.reset()
                    stats.failures = 0
                self._retry_later(backoff, f"stream ended: {error}" if error else "stream ended")
                continue
            if error:
                log.warning("camera %s: file %s: read error, stopping: %s", cam.id, self.url, error)
            if cam.loop and got and not error:
                offset = last_pts + frame_dur
                continue
            return

    def _retry_later(self, backoff: Backoff, reason: str) -> None:
        delay = backoff.next()
        st = self.stats
        st.reconnects += 1
        st.failures += 1
        st.backoff_s = delay
        st.last_error = f"camera {self.camera.id}: {reason}"
        log.warning("camera %s: %s; reconnect attempt %d in %.2f s", self.camera.id, reason, backoff.attempt, delay)
        self._wait(delay)

    def _packets(self, container, stream, result: dict):
        """Demux ``stream``, skipping corrupt data; sets result['error'] on a read error."""
        in_a_row = 0
        while True:
            try:
                for packet in container.demux(stream):
                    in_a_row = 0
                    yield packet
                return
            except av.InvalidDataError as exc:
                self.stats.corrupt += 1
                in_a_row += 1
                if in_a_row >= _MAX_ERRORS_IN_A_ROW:
                    result["error"] = f"too many corrupt packets: {exc}"
                    return
            except (av.FFmpegError, OSError) as exc:
                result["error"] = str(exc) or type(exc).__name__
                return

    def _decode(self, container, offset: float) -> tuple[bool, float, float, str | None]:
        """Decode one opened container. Returns (got_frames, last_pts, frame_duration, error)."""
        if not container.streams.video:
            if not self.live:
                raise SourceError(self.camera.id, f"no video stream in {self.url}")
            return False, 0.0, 0.0, "no video stream"
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        frame_dur = float(1 / rate) if rate else 0.04
        stats, select = self.stats, self.select
        result: dict[str, str] = {}
        got, last_pts, bad_in_a_row = False, None, 0
        for packet in self._packets(container, stream, result):
            self._check_stop()
            if packet.is_corrupt:
                stats.corrupt += 1
                continue
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                stats.corrupt += 1
                bad_in_a_row += 1
                if bad_in_a_row >= _MAX_ERRORS_IN_A_ROW:
                    result["error"] = "too many undecodable packets"
                    break
                continue
            bad_in_a_row = 0
            for frame in decoded:
                stats.decoded += 1
                if frame.is_corrupt:
                    stats.corrupt += 1
                    continue
                t = frame.time
                if t is None:
                    t = (last_pts - offset + frame_dur) if last_pts is not None else 0.0
                pts = t + offset
                last_pts, got = pts, True
                if select is not None and not select(pts):
                    continue
                sw, sh = frame.width, frame.height
                dw, dh = self._out_size(sw, sh)
                if (dw, dh) != (sw, sh):
                    frame = frame.reformat(width=dw, height=dh, format="rgb24")
                self._emit(pts, frame.to_ndarray(format="rgb24"), (sw, sh))
        return got, (last_pts if last_pts is not None else offset), frame_dur, result.get("error")


class SyntheticSource(FrameSource):
    """``synthetic://scene?...`` rendered in the decode thread (see :mod:`.synthetic`)."""

    def __init__(self, camera: CameraConfig, **kwargs):
        super().__init__(camera, **kwargs)
        try:
            self.params = parse_synthetic_url(camera.source)
        except ValueError as exc:
            raise SourceError(camera.id, str(exc)) from None

    def _produce(self) -> None:
        p = self.params
        scene = SyntheticScene(p, self._out_size(p.w, p.h))
        self.stats.connects += 1
        self.stats.connected = True
        n = 0
        while True:
            self._check_stop()
            t = n / p.fps
            if p.duration is not None and t >= p.duration:
                return
            n += 1
            self.stats.decoded += 1
            if self.select is not None and not self.select(t):
                continue
            self._emit(t, scene.render(t), (p.w, p.h))


def open_source(camera: CameraConfig, *, select: Callable[[float], bool] | None = None,
                width: int | None = None, as_fast_as_possible: bool = False,
                stats: SourceStats | None = None) -> FrameSource:
    """The :class:`FrameSource` for ``camera`` (see its docstring for the arguments).

    Does no I/O; errors appear when iterating ``frames()``. Raises
    :class:`SourceError` for an invalid synthetic URL.
    """
    kwargs = dict(select=select, width=width, as_fast_as_possible=as_fast_as_possible, stats=stats)
    if camera.kind == "synthetic":
        return SyntheticSource(camera, **kwargs)
    return AvSource(camera, **kwargs)
