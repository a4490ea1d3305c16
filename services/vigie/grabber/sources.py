"""Camera sources: decoded frames as an async iterator, decoding off the event loop.

:func:`open_source` picks the source for a camera: :class:`AvSource` (files, rtsp,
http, decoded with PyAV) or :class:`SyntheticSource` (``synthetic://scene?...``).
All share :class:`~.source_base.FrameSource`: blocking work in one thread per
camera, frames handed to the event loop through a bounded queue.

Sampling (a ``select(pts) -> bool`` callable, e.g. :class:`~.sampler.PtsSampler`)
and resizing happen in that thread before the RGB conversion, so frames that are
not kept cost only their decode; frames are turned upright there too
(:mod:`.orientation`), and packets before a connection's first keyframe are skipped
and counted (:mod:`.keyframes`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable

import av

from vigie.core.cameras import CameraConfig
from .errors import SourceError
from .keyframes import KeyframeGate
from .orientation import Upright
from .source_base import Backoff, FrameSource, SourceFrame, SourceStats, _reason
from .synthetic import SyntheticScene, parse_synthetic_url

__all__ = ["AvSource", "Backoff", "FrameSource", "SourceFrame", "SourceStats", "SyntheticSource", "open_source"]

log = logging.getLogger("vigie.grabber.sources")


def _ffmpeg_major() -> int:
    try:
        return int(str(av.ffmpeg_version_info).lstrip("n").split(".")[0])
    except ValueError:
        return 8


_FFMPEG_MAJOR = _ffmpeg_major()
_MAX_ERRORS_IN_A_ROW = 200  # consecutive corrupt packets before a stream is considered broken


_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)(?P<suffix>\.(?:tif|tiff|png|jpg|jpeg|bmp))$", re.IGNORECASE)


def image_sequence(camera_id: str, folder: str) -> tuple[str, int]:
    """The FFmpeg image2 pattern (e.g. ``folder/%03d.tif``) and first number of a folder of numbered stills.

    Raises :class:`SourceError` when the folder holds no numbered image.
    """
    numbered = sorted((m for m in map(_NUMBERED.match, os.listdir(folder)) if m), key=lambda m: int(m["number"]))
    if not numbered:
        raise SourceError(camera_id, f"folder holds no numbered images (001.tif, frame_0001.png...): {folder}")
    first = numbered[0]
    digits = first["number"]
    width = f"%0{len(digits)}d" if digits.startswith("0") else "%d"
    pattern = first["prefix"].replace("%", "%%") + width + first["suffix"]
    return os.path.join(folder, pattern), int(digits)


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
        """Raises :class:`SourceError` when a file source is missing, or a folder holds no numbered images."""
        if self.kind == "file":
            if not os.path.exists(self.url):
                raise SourceError(self.camera.id, f"file not found: {self.url}")
            if os.path.isdir(self.url):
                image_sequence(self.camera.id, self.url)
            elif not os.path.isfile(self.url):
                raise SourceError(self.camera.id, f"not a regular file: {self.url}")

    def _open(self) -> av.container.InputContainer:
        t = self.camera.timeout_s
        if self.kind == "file" and os.path.isdir(self.url):
            pattern, first = image_sequence(self.camera.id, self.url)
            return av.open(pattern, mode="r", format="image2",
                           options={"framerate": f"{self.camera.folder_fps:g}", "start_number": str(first)})
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
            started = time.monotonic()
            try:
                container = self._open()
            except Exception as exc:  # noqa: BLE001 - av raises many types (OSError, FFmpegError...)
                if not self.live:
                    raise SourceError(cam.id, f"cannot open file {self.url}: {_reason(exc)}") from None
                elapsed = time.monotonic() - started
                why = _reason(exc)
                if elapsed >= 0.9 * cam.timeout_s:
                    why = f"no answer within {elapsed:.1f} s (timeout_s={cam.timeout_s:g}; {why})"
                self._retry_later(backoff, f"cannot open {self.url}: {why}")
                continue
            stats.connects += 1
            stats.connected = True
            if self.live:
                log.info("camera %s: connected to %s", cam.id, self.url)
            try:
                got, last_pts, frame_dur, error = self._decode(container, offset, backoff)
            finally:
                stats.connected = False
                container.close()
            if self.live:
                self._retry_later(backoff, f"stream ended: {error}" if error else "stream ended")
                continue
            if error:
                log.warning("camera %s: file %s: read error, stopping: %s", cam.id, self.url, error)
            if cam.loop and got and not error:
                offset = last_pts + frame_dur
                continue
            return

    def _retry_later(self, backoff: Backoff, reason: str) -> None:
        self._check_stop()
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
            except av.ExitError:  # PyAV's read timeout (interrupt callback)
                result["error"] = f"no data for {self.camera.timeout_s:g} s (read timeout)"
                return
            except (av.FFmpegError, OSError) as exc:
                result["error"] = _reason(exc)
                return

    def _decode(self, container, offset: float, backoff: Backoff) -> tuple[bool, float, float, str | None]:
        """Decode one opened container. Returns (got_frames, last_pts, frame_duration, error).

        The first good frame resets the back-off and ``stats.failures``."""
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
        gate, upright = KeyframeGate(self.camera.id, stats), Upright(self.camera.id)
        for packet in self._packets(container, stream, result):
            self._check_stop()
            if packet.is_corrupt:
                stats.corrupt += 1
                continue
            if gate.skip(packet):
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
                if not self.live and last_pts is not None and pts <= last_pts:
                    # Some files (AVI without real PTS) time frames by packet order, out of
                    # presentation order: a file's clock only moves forward, a frame at a time.
                    pts = last_pts + frame_dur
                if not got:
                    got = True
                    backoff.reset()
                    stats.failures = 0
                last_pts = pts
                if select is not None and not select(pts):
                    continue
                self._emit(pts, *upright(frame, self._out_size))  # display matrix honoured
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
