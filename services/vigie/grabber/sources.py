"""Camera sources: decoded frames as an async iterator, decoding off the event loop.

:func:`open_source` picks the source for a camera: :class:`AvSource` (files, rtsp,
http, decoded with PyAV), :class:`~.whep.WhepSource` (``whep(s)://``: WebRTC, aiortc) or
:class:`SyntheticSource` (``synthetic://scene?...``).
All share :class:`~.source_base.FrameSource`: blocking work in one thread per
camera, frames handed to the event loop through a bounded queue.

Sampling (a ``select(pts) -> bool`` callable, e.g. :class:`~.sampler.PtsSampler`)
and resizing happen in that thread before the RGB conversion, so frames that are
not kept cost only their decode; frames are turned upright there too
(:mod:`.orientation`), and packets before a connection's first keyframe are skipped
and counted (:mod:`.keyframes`).
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
from collections.abc import Callable

import av
import simplejpeg

from vigie.core.cameras import CameraConfig
from .errors import SourceError
from .mjpeg import MalformedPart, PartReader, open_http
from .keyframes import KeyframeGate
from .orientation import Upright
from .source_base import Backoff, FrameSource, SourceFrame, SourceStats, _reason
from .synthetic import SyntheticScene, parse_synthetic_url
from .whep import WhepSource

__all__ = ["AvSource", "Backoff", "FrameSource", "HttpSource", "SourceFrame", "SourceStats", "SyntheticSource",
           "WhepSource", "open_source"]

log = logging.getLogger("vigie.grabber.sources")


def _ffmpeg_major() -> int:
    try:
        return int(str(av.ffmpeg_version_info).lstrip("n").split(".")[0])
    except ValueError:
        return 8


_FFMPEG_MAJOR = _ffmpeg_major()
_MAX_ERRORS_IN_A_ROW = 200  # consecutive corrupt packets before a stream is considered broken
#: FFmpeg's answers for credentials refused, over HTTP and RTSP alike (401, 403)
_REFUSED = (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError)
_MISSING_PTS_IN_A_ROW = 3  # frames without a PTS before a live connection is timed by arrival
_WARN_EVERY_S = 60.0  # malformed MJPEG parts: one warning at most this often, seconds


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


class _LiveClock:
    """Timeline of one connection of a live stream decoded by FFmpeg, in seconds.

    Its PTS while they increase; a frame now and then without a PTS (FFmpeg's RTSP
    client gives none to the first frame of a session) is placed one ``frame_dur``
    after the previous. From the first PTS not after the previous one, or from
    :data:`_MISSING_PTS_IN_A_ROW` frames in a row without one, the connection is timed
    by arrival instead (``stats.clock`` says which; logged once per connection).
    """

    def __init__(self, source: FrameSource, frame_dur: float):
        self.source = source
        self.frame_dur = frame_dur
        self.by_arrival = False
        self.previous: float | None = None
        self.missing = 0
        source.stats.clock = "pts"

    def time(self, pts: float | None) -> float:
        if self.by_arrival:
            return self.source._arrival()
        if pts is None:
            self.missing += 1
            if self.missing < _MISSING_PTS_IN_A_ROW:
                self.previous = 0.0 if self.previous is None else self.previous + self.frame_dur
                return self.previous
            why = f"are missing ({self.missing} frames in a row)"
        elif self.previous is not None and pts <= self.previous:
            why = f"go backwards ({pts:.3f} s after {self.previous:.3f} s)"
        else:
            self.missing = 0
            self.previous = pts
            return pts
        self.by_arrival = True
        self.source.stats.clock = "arrival"
        log.warning("camera %s: the stream's timestamps %s: its frames are timed by arrival until it reconnects",
                    self.source.camera.id, why)
        return self.source._arrival()


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
        url = self.camera.open_url()  # with the password of its credentials, if any: held by no field
        us = str(int(t * 1_000_000))
        if self.kind == "rtsp":
            # ffmpeg >= 5: 'timeout' is the socket I/O timeout in us ('stimeout' before)
            options = {"rtsp_transport": "tcp", "allowed_media_types": "video",
                       ("timeout" if _FFMPEG_MAJOR >= 5 else "stimeout"): us}
        else:
            options = {"timeout": us, "rw_timeout": us}
        # PyAV's own timeout (interrupt callback) also bounds open and each read
        return av.open(url, mode="r", options=options, timeout=(t, t))

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
                if isinstance(exc, _REFUSED):
                    self._unauthorised_later(backoff, why)
                    continue
                if elapsed >= 0.9 * cam.timeout_s:
                    why = f"no answer within {elapsed:.1f} s (timeout_s={cam.timeout_s:g}; {why})"
                self._retry_later(backoff, f"cannot open {self.safe_url}: {why}")
                continue
            stats.connects += 1
            stats.connected = True
            stats.unauthorised = False
            if self.live:
                log.info("camera %s: connected to %s", cam.id, self.safe_url)
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
        clock = _LiveClock(self, frame_dur)
        result: dict[str, str] = {}
        got, last_pts, bad_in_a_row = False, None, 0
        gate, upright = KeyframeGate(self.camera.id, stats), Upright(self.camera.id)
        convert = upright.planes if self.planar else upright  # only the frames kept are converted
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
                if self.live:
                    pts = clock.time(t)
                else:
                    if t is None:
                        t = (last_pts - offset + frame_dur) if last_pts is not None else 0.0
                    pts = t + offset
                    if last_pts is not None and pts <= last_pts:
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
                self._emit(pts, *convert(frame, self._out_size))  # display matrix honoured
        return got, (last_pts if last_pts is not None else offset), frame_dur, result.get("error")


class _Stalled(Exception):
    """No part came within the camera's timeout_s."""


class HttpSource(AvSource):
    """An http(s) camera. MJPEG (``multipart/x-mixed-replace``) is read part by part
    here (:class:`~.mjpeg.PartReader`), its frames timed by arrival: the JPEG parts
    carry no timestamp, and FFmpeg's mpjpeg demuxer invents some that sample a 5 fps
    camera at about 1 fps. A malformed part is counted (``stats.corrupt``) and skipped
    on the same connection. A stream of another type (MPEG-TS, FLV... over HTTP) is
    handed to FFmpeg as :class:`AvSource` does, for good.

    401/403 give the ``unauthorised`` state with a slow retry; no part within
    ``timeout_s`` (a stalled camera) drops the connection and reconnects with back-off.
    Only the parts kept by ``select`` are decoded (libjpeg-turbo, DCT-scaled towards
    the output width, then area-resized).
    """

    def _produce(self) -> None:
        cam, stats = self.camera, self.stats
        backoff = Backoff(cam.reconnect)
        while True:
            self._check_stop()
            started = time.monotonic()
            try:
                response = open_http(cam.open_url(), cam.timeout_s)
            except urllib.error.HTTPError as exc:
                exc.close()
                what = f"HTTP {exc.code} {exc.reason}"
                if exc.code in (401, 403):
                    self._unauthorised_later(backoff, what)
                else:
                    self._retry_later(backoff, f"cannot open {self.safe_url}: {what}")
                continue
            except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
                why = _reason(getattr(exc, "reason", None) if isinstance(exc, urllib.error.URLError)
                              and isinstance(exc.reason, BaseException) else exc)
                if time.monotonic() - started >= 0.9 * cam.timeout_s:
                    why = f"no answer within {time.monotonic() - started:.1f} s (timeout_s={cam.timeout_s:g}; {why})"
                self._retry_later(backoff, f"cannot open {self.safe_url}: {why}")
                continue
            with response:
                ctype = response.headers.get_content_type()
                boundary = response.headers.get_param("boundary")
                if ctype != "multipart/x-mixed-replace" or not boundary:
                    break
                stats.connects += 1
                stats.connected, stats.unauthorised, stats.clock = True, False, "arrival"
                log.info("camera %s: connected to %s (MJPEG)", cam.id, self.safe_url)
                try:
                    error = self._read_parts(response, str(boundary), backoff)
                finally:
                    stats.connected = False
            self._retry_later(backoff, error)
        log.info("camera %s: %s serves %s, not MJPEG: decoded by FFmpeg", cam.id, self.safe_url, ctype)
        super()._produce()

    def _read_parts(self, response: http.client.HTTPResponse, boundary: str, backoff: Backoff) -> str:
        """Emit the parts of one connection until it fails; returns why it ended."""
        cam, stats, select = self.camera, self.stats, self.select
        timeout = cam.timeout_s
        last_part = time.monotonic()

        def read() -> bytes:
            self._check_stop()
            if time.monotonic() - last_part > timeout:
                raise _Stalled
            try:
                return response.read1(1 << 16)
            except TimeoutError:
                raise _Stalled from None

        reader = PartReader(read, boundary)
        got, bad_in_a_row = False, 0
        next_warning, warned = 0.0, stats.corrupt
        while True:
            try:
                body = reader.next()
            except MalformedPart as exc:  # counted and skipped; a camera sending only these stalls (timeout_s)
                stats.corrupt += 1
                bad_in_a_row += 1
                now = time.monotonic()
                if now >= next_warning:  # at most one warning a minute, with the count
                    log.warning("camera %s: malformed MJPEG part skipped: %s (%d skipped since the last warning)",
                                cam.id, exc, stats.corrupt - warned, extra={"camera": cam.id, "corrupt": stats.corrupt})
                    next_warning, warned = now + _WARN_EVERY_S, stats.corrupt
                if bad_in_a_row >= _MAX_ERRORS_IN_A_ROW:
                    return f"{bad_in_a_row} malformed parts in a row (last: {exc})"
                continue
            except _Stalled:
                stats.stalls += 1
                bad = f", {bad_in_a_row} malformed part(s) meanwhile" if bad_in_a_row else ""
                return (f"stalled: no valid part for {time.monotonic() - last_part:.1f} s{bad} "
                        f"(timeout_s={timeout:g}) on {self.safe_url}")
            except EOFError:
                return "stream ended"
            except (OSError, http.client.HTTPException) as exc:
                return f"read error on {self.safe_url}: {_reason(exc)}"
            t = self._arrival()
            last_part = time.monotonic()
            bad_in_a_row = 0
            stats.decoded += 1
            if select is not None and not select(t):
                continue
            try:
                height, width = simplejpeg.decode_jpeg_header(body)[:2]
                out_w, out_h = self._out_size(width, height)
                image = simplejpeg.decode_jpeg(body, colorspace="RGB", min_width=out_w, min_height=out_h)
            except ValueError as exc:  # libjpeg-turbo: corrupt data (strict)
                stats.corrupt += 1
                log.debug("camera %s: undecodable JPEG part skipped: %s", cam.id, exc)
                continue
            if not got:
                got = True
                backoff.reset()
                stats.failures = 0
            self._emit_rgb(t, image, (width, height))


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
                stats: SourceStats | None = None, planar: bool = False) -> FrameSource:
    """The :class:`FrameSource` for ``camera`` (see its docstring for the arguments).

    Does no I/O; errors appear when iterating ``frames()``. Raises
    :class:`SourceError` for an invalid synthetic URL.
    """
    kwargs = dict(select=select, width=width, as_fast_as_possible=as_fast_as_possible, stats=stats, planar=planar)
    if camera.kind == "synthetic":
        return SyntheticSource(camera, **kwargs)
    if camera.kind == "http":
        return HttpSource(camera, **kwargs)
    if camera.kind == "whep":
        return WhepSource(camera, **kwargs)
    return AvSource(camera, **kwargs)
