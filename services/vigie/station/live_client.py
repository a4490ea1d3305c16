"""A live-view client for tools (the bench, tests): opens a station's live view of a camera with aiortc, as
the browser's live page does, and measures how far behind capture each frame arrives, decoded.

Each frame the station sends is described on the view's data channel (capture time, RTP timestamp);
a decoded frame is matched to its description by its RTP timestamp (the sender's random origin found
as the most frequent difference), so its delay is its decoding here less its capture at the camera.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

#: RTP timestamps wrap at 2**32.
_WRAP = 1 << 32
#: Largest difference, in 1/90000 s, between a decoded frame's timestamp and its description's (rounding).
_TOLERANCE = 900


class LiveRefused(Exception):
    """The station refused the live view: ``status`` (403, 503...) and its text."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"live view refused: {status} {text}")
        self.status = status


@dataclass
class LiveFigures:
    """What a client saw of a live view.

    Attributes:
        frames: frames decoded.
        delays_s: capture to decoded here, seconds, per frame matched to its description.
        server_delays_s: capture to the station's encoder, seconds, per frame described.
        ended: True when the station ended the view (the track or the connection closed) before the client did.
    """

    frames: int = 0
    delays_s: list[float] = field(default_factory=list)
    server_delays_s: list[float] = field(default_factory=list)
    ended: bool = False


class LiveClient:
    """One live view of ``camera`` at the station ``base`` (``http://host:port``), for a logged-in ``http``
    session (its cookie) with the session's ``csrf`` token. Use ``async with``; :meth:`watch` collects."""

    def __init__(self, http: aiohttp.ClientSession, base: str, csrf: str, camera: str, incident: str = "") -> None:
        self.http, self.base, self.csrf, self.camera, self.incident = http, base, csrf, camera, incident
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.described: dict[int, tuple[int, int]] = {}  # pts -> (capture_ns, sent_ns)
        self.decoded: list[tuple[int, int]] = []  # (pts + origin, decoded at ns)
        self._tracks: asyncio.Queue = asyncio.Queue()
        self._track: Any = None
        self._closed = asyncio.Event()

    async def __aenter__(self) -> "LiveClient":
        """Offer, get the answer. Raises LiveRefused for a refusal, aiohttp.ClientError when nothing answers."""
        self.pc.addTransceiver("video", direction="recvonly")
        channel = self.pc.createDataChannel("capture")
        channel.on("message", self._describe)
        self.pc.on("track", self._tracks.put_nowait)

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                self._closed.set()

        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"type": "offer", "sdp": self.pc.localDescription.sdp, "incident": self.incident}
        async with self.http.post(f"{self.base}/api/cameras/{self.camera}/live", json=body,
                                  headers={"Origin": self.base, "X-CSRF-Token": self.csrf}) as answer:
            if answer.status != 200:
                text = await answer.text()
                await self.pc.close()
                raise LiveRefused(answer.status, text[:300])
            reply = await answer.json()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type=reply["type"]))
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.pc.close()

    def _describe(self, message: Any) -> None:
        item = json.loads(message)
        self.described[item["pts"]] = (item["capture_ns"], item["sent_ns"])

    async def watch(self, frames: int, timeout_s: float = 30.0) -> LiveFigures:
        """Decode until ``frames`` frames came, the station ends the view, or ``timeout_s`` passes."""
        figures = LiveFigures()
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(asyncio.TimeoutError):
            if self._track is None:
                self._track = await asyncio.wait_for(self._tracks.get(), timeout_s)
            track = self._track
            while figures.frames < frames and time.monotonic() < deadline:
                receiving = asyncio.ensure_future(track.recv())
                closing = asyncio.ensure_future(self._closed.wait())
                done, _ = await asyncio.wait({receiving, closing}, timeout=deadline - time.monotonic(),
                                             return_when=asyncio.FIRST_COMPLETED)
                closing.cancel()
                if receiving not in done:
                    receiving.cancel()
                    figures.ended = self._closed.is_set()
                    break
                try:
                    frame = receiving.result()
                except MediaStreamError:
                    figures.ended = True
                    break
                self.decoded.append((frame.pts, time.time_ns()))
                figures.frames += 1
        figures.server_delays_s = [(sent - capture) / 1e9 for capture, sent in self.described.values()]
        figures.delays_s = self._matched()
        return figures

    def _matched(self) -> list[float]:
        """Capture to decoding, seconds, of the decoded frames whose description came."""
        if not self.decoded or not self.described:
            return []
        origins = Counter((pts - sent) % _WRAP for pts, _ in self.decoded for sent in self.described)
        origin, _ = origins.most_common(1)[0]
        sent = sorted(self.described)
        out = []
        for pts, decoded_ns in self.decoded:
            at = (pts - origin) % _WRAP
            i = bisect.bisect_left(sent, at)
            near = min(sent[max(0, i - 1):i + 1], key=lambda s: abs(s - at))
            if abs(near - at) <= _TOLERANCE:
                out.append((decoded_ns - self.described[near][0]) / 1e9)
        return out
