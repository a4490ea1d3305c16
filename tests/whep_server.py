"""A small WHEP endpoint for tests: the first frames of a real clip, looped at 10 fps, sent over WebRTC (aiortc) to every
client that POSTs an SDP offer; HTTP Basic credentials checked when given. Runs in a thread of its own."""

from __future__ import annotations

import asyncio
import base64
import fractions
import threading
import time
import uuid
from pathlib import Path

import av
import numpy as np
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

#: Frames of the clip sent, in a loop, at FPS frames per second.
FRAMES, FPS = 60, 10


def clip_frames(path: Path, count: int = FRAMES) -> list[np.ndarray]:
    """The first ``count`` frames of the clip, RGB."""
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                return frames
    return frames


class ClipTrack(MediaStreamTrack):
    """The clip's frames, looped, at :data:`FPS` (real time)."""

    kind = "video"

    def __init__(self, frames: list[np.ndarray]) -> None:
        super().__init__()
        self.frames = frames
        self.sent = 0
        self.started: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.started is None:
            self.started = time.monotonic()
        due = self.started + self.sent / FPS
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = av.VideoFrame.from_ndarray(self.frames[self.sent % len(self.frames)], format="rgb24")
        frame.pts, frame.time_base = self.sent * (90000 // FPS), fractions.Fraction(1, 90000)
        self.sent += 1
        return frame


class WhepServer:
    """``POST /<path>`` (an SDP offer) -> ``201`` with the answer and a ``Location``; ``DELETE`` of it ends the
    session. ``user``/``password``: Basic credentials required (401 otherwise). Use as a context manager;
    ``url`` is the endpoint as a ``whep://`` source (without credentials)."""

    def __init__(self, clip: Path, path: str = "cam/whep", user: str = "", password: str = "") -> None:
        self.clip, self.path = clip, path
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else ""
        self.sessions: dict[str, RTCPeerConnection] = {}
        self.refused = self.answered = self.deleted = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="whep-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self._frames = clip_frames(clip)

    @property
    def url(self) -> str:
        return f"whep://127.0.0.1:{self.port}/{self.path}"

    def __enter__(self) -> "WhepServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post(f"/{self.path}", self._offer)
        app.router.add_delete(f"/{self.path}/{{id}}", self._delete)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._drop()
        await self._runner.cleanup()

    def drop(self) -> None:
        """End every session from the server's side (as an endpoint that restarts)."""
        asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(30)

    async def _drop(self) -> None:
        for session in list(self.sessions):
            await self.sessions.pop(session).close()

    async def _offer(self, request: web.Request) -> web.Response:
        if self.expected and request.headers.get("Authorization") != self.expected:
            self.refused += 1
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="whep"'})
        if request.content_type != "application/sdp":
            raise web.HTTPUnsupportedMediaType()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = uuid.uuid4().hex
        self.sessions[session] = pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        pc.addTrack(ClipTrack(self._frames))
        await pc.setLocalDescription(await pc.createAnswer())
        self.answered += 1
        return web.Response(status=201, text=pc.localDescription.sdp, content_type="application/sdp",
                            headers={"Location": f"/{self.path}/{session}"})

    async def _delete(self, request: web.Request) -> web.Response:
        pc = self.sessions.pop(request.match_info["id"], None)
        if pc is None:
            raise web.HTTPNotFound()
        await pc.close()
        self.deleted += 1
        return web.Response(status=200)
