"""A camera received over WebRTC from a WHEP endpoint (WebRTC-HTTP Egress Protocol), with aiortc.

Declared as ``source: whep://host:port/path`` (the endpoint over http) or ``wheps://host/path`` (over https),
with ``credentials`` (HTTP Basic) when the endpoint wants them, e.g. a MediaMTX path ``wheps://nvr:8889/cam4/whep``.

One connection: an SDP offer (receive-only video, host candidates: no STUN server) is POSTed to the endpoint
(``Content-Type: application/sdp``); its ``201 Created`` answer completes the peer connection, and each
decoded frame of the remote track goes through the same path as the other sources' (sampling by arrival time,
resizing, privacy masks and publishing in :mod:`vigie.grabber.app`). The session is deleted at the endpoint
(``DELETE`` of the ``Location`` it gave) when the connection ends.

Like the other live sources it runs in its own thread (an event loop of its own there): a 401/403 from the
endpoint is the ``unauthorised`` state with its slow retry; a refused or failed connection, or no frame within
``timeout_s``, reconnects with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av.video.reformatter import VideoReformatter

from .planes import to_planes
from .source_base import Backoff, FrameSource, _reason

__all__ = ["WhepSource", "whep_endpoint"]

log = logging.getLogger("vigie.grabber.sources")
#: Seconds of each wait for a frame between two checks that the source is closed.
_POLL_S = 0.25


class _Refused(Exception):
    """The endpoint refused the credentials (401/403)."""


def whep_endpoint(url: str) -> tuple[str, aiohttp.BasicAuth | None]:
    """``whep://user:pass@host/path`` -> (``http://host/path``, its Basic credentials or None); ``wheps`` -> https."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme.lower() == "wheps" else "http"
    auth = None
    if parts.username is not None:
        auth = aiohttp.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, "")), auth


class WhepSource(FrameSource):
    """A ``whep(s)://`` camera (see the module's docstring); frames timed by arrival."""

    live = True

    def _produce(self) -> None:
        backoff = Backoff(self.camera.reconnect)
        while True:
            self._check_stop()
            try:
                error = asyncio.run(self._connection(backoff))
            except _Refused as exc:
                self._unauthorised_later(backoff, str(exc))
                continue
            self._retry_later(backoff, error)

    async def _connection(self, backoff: Backoff) -> str:
        """One WHEP session, until it fails; returns why it ended. Raises _Refused, or _Stopped once closed."""
        cam, stats = self.camera, self.stats
        url, auth = whep_endpoint(cam.open_url())
        timeout = aiohttp.ClientTimeout(total=cam.timeout_s)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        tracks: asyncio.Queue = asyncio.Queue()
        pc.on("track", tracks.put_nowait)
        resource = None
        async with aiohttp.ClientSession(timeout=timeout, auth=auth) as http:
            try:
                pc.addTransceiver("video", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                started = time.monotonic()
                try:
                    async with http.post(url, data=pc.localDescription.sdp,
                                         headers={"Content-Type": "application/sdp"}) as response:
                        if response.status in (401, 403):
                            raise _Refused(f"HTTP {response.status} {response.reason}")
                        if response.status not in (200, 201):
                            return f"cannot open {self.safe_url}: HTTP {response.status} {response.reason}"
                        answer = await response.text()
                        if "Location" in response.headers:
                            resource = urljoin(url, response.headers["Location"])
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                    elapsed = time.monotonic() - started
                    why = _reason(exc) if not isinstance(exc, asyncio.TimeoutError) else "timeout"
                    if elapsed >= 0.9 * cam.timeout_s:
                        why = f"no answer within {elapsed:.1f} s (timeout_s={cam.timeout_s:g}; {why})"
                    return f"cannot open {self.safe_url}: {why}"
                try:
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                except ValueError as exc:
                    return f"unusable SDP answer from {self.safe_url}: {str(exc)[:200]}"
                stats.connects += 1
                stats.connected, stats.unauthorised, stats.clock = True, False, "arrival"
                log.info("camera %s: connected to %s (WHEP)", cam.id, self.safe_url)
                return await self._receive(tracks, backoff)
            finally:
                stats.connected = False
                await pc.close()
                if resource:
                    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                        async with http.delete(resource, timeout=aiohttp.ClientTimeout(total=2)):
                            pass

    async def _receive(self, tracks: asyncio.Queue, backoff: Backoff) -> str:
        """Emit the frames of the session's video track until it ends or stalls; returns why it ended."""
        cam, stats, select = self.camera, self.stats, self.select
        track, got = None, False
        reformatter = VideoReformatter()
        last = time.monotonic()
        while True:
            self._check_stop()
            if time.monotonic() - last > cam.timeout_s:
                stats.stalls += 1
                what = "frame" if track is not None else "video track"
                return f"stalled: no {what} for {time.monotonic() - last:.1f} s (timeout_s={cam.timeout_s:g}) " \
                       f"on {self.safe_url}"
            try:
                if track is None:
                    track = await asyncio.wait_for(tracks.get(), _POLL_S)
                    if track.kind != "video":
                        track = None
                    continue
                frame = await asyncio.wait_for(track.recv(), _POLL_S)
            except asyncio.TimeoutError:
                continue
            except MediaStreamError:
                return "stream ended"
            last = time.monotonic()
            stats.decoded += 1
            t = self._arrival()
            if not got:
                got = True
                backoff.reset()
                stats.failures = 0
            if select is not None and not select(t):
                continue
            width, height = self._out_size(frame.width, frame.height)  # resized as it leaves YUV
            if self.planar:
                image = to_planes(frame, width, height, reformatter)
            else:
                image = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
            self._emit(t, image, (frame.width, frame.height))
