"""Misbehaving cameras for tests, served on 127.0.0.1 from a background thread.

* :class:`MjpegServer`: MJPEG over HTTP (``multipart/x-mixed-replace``, chunked) from a
  script of parts, good or malformed, paced at ``fps``; optional Basic authentication
  (401 without the right credentials), a forced status (403...), or a stall (headers,
  then nothing). Each good JPEG carries its index in the script as 12 black/white
  blocks along its top edge (:func:`part_index` reads it back from a decoded frame).
* :class:`BytesServer`: one body (e.g. an MPEG-TS stream made with ffmpeg) at ``/video``.
* :class:`RtspRefuser`: an RTSP server answering ``401 Unauthorized`` to every request,
  enough to see what an RTSP client does with refused credentials.

Both run in their own event loop in a daemon thread, so sync tests (a grabber process)
and async tests (a source in the test's loop) use them alike::

    with MjpegServer(["good", "truncated", "good"], fps=5) as server:
        url = server.url(user="admin", password="secret")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import threading
from collections import Counter

import numpy as np
import simplejpeg
from aiohttp import web

__all__ = ["BAD_KINDS", "BytesServer", "MjpegServer", "RtspRefuser", "part_index"]

#: Kinds of parts in a script: "good" and "nolength" are whole JPEGs, the others are malformed
#: ("garbage" is random bytes between two parts, not a part).
BAD_KINDS = ("short", "long", "truncated", "junk", "garbage")
_BITS, _BLOCK = 12, 64


def _frame(index: int, size: tuple[int, int]) -> bytes:
    """A ``size`` (w, h) JPEG: a gradient scene with ``index`` in 12 blocks along the top."""
    w, h = size
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    image = np.empty((h, w, 3), np.uint8)
    image[..., 0] = (60 + 120 * x + 0 * y).astype(np.uint8)
    image[..., 1] = (60 + 120 * y + 0 * x).astype(np.uint8)
    image[..., 2] = 90
    for bit in range(_BITS):
        image[:_BLOCK, bit * _BLOCK:(bit + 1) * _BLOCK] = 255 if index >> bit & 1 else 0
    return simplejpeg.encode_jpeg(image, quality=85, colorspace="RGB")


def part_index(image: np.ndarray, source_width: int) -> int:
    """The index written by the server into a frame, read from ``image`` ((H, W, 3) uint8,
    possibly resized from ``source_width`` pixels wide)."""
    scale = image.shape[1] / source_width
    half = _BLOCK * scale / 2
    return sum(1 << bit for bit in range(_BITS)
               if image[int(half), int((bit * _BLOCK + _BLOCK / 2) * scale)].mean() > 128)


class _Threaded:
    """An asyncio server in a daemon thread: subclasses implement :meth:`_serve` (returns a closer)."""

    def __init__(self) -> None:
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closer = None

    async def _serve(self):  # noqa: ANN202 - returns an async closer
        raise NotImplementedError

    def start(self):  # noqa: ANN201
        def main() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                closer = self._loop.run_until_complete(self._serve())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                self._error = exc
                self._ready.set()
                return
            self._closer = closer
            self._ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=main, name=type(self).__name__, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    async def _serve_video(self):  # noqa: ANN202
        """An aiohttp server on a free port with ``self._video`` at ``/video``."""
        app = web.Application()
        app.router.add_get("/video", self._video)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.port = runner.addresses[0][1]
        return runner.cleanup

    async def _shutdown(self) -> None:
        await self._closer()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:  # handlers still streaming to a client
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self):  # noqa: ANN204
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MjpegServer(_Threaded):
    """MJPEG over HTTP at ``/video`` playing ``script`` (kinds: good, nolength, short, long,
    truncated, junk, garbage) at ``fps`` parts per second, on every connection.

    ``then``: "hold" keeps the connection open without data after the script, "close"
    ends the response (the camera goes away), "repeat" plays it again. ``auth``:
    (user, password) required with Basic authentication. ``status``: answer every
    request with this status (e.g. 403). ``stall``: send the response headers, then
    nothing. Counters: ``requests``, ``connections`` (streams started), ``sent`` (parts per kind).
    """

    def __init__(self, script: list[str], *, fps: float = 5.0, size: tuple[int, int] = (960, 540),
                 then: str = "hold", auth: tuple[str, str] | None = None, status: int | None = None,
                 stall: bool = False, boundary: str = "vigieboundary"):
        super().__init__()
        unknown = set(script) - {"good", "nolength", *BAD_KINDS}
        if unknown:
            raise ValueError(f"unknown part kinds {unknown}")
        self.script, self.fps, self.size, self.then = list(script), fps, size, then
        self.auth, self.status, self.stall, self.boundary = auth, status, stall, boundary
        self.requests = 0
        self.connections = 0
        self.sent: Counter[str] = Counter()
        self._rng = random.Random(7)
        self._jpegs = {i: _frame(i, size) for i, kind in enumerate(script) if kind in ("good", "nolength", "short",
                                                                                         "long", "truncated")}

    def url(self, user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user is not None else ""
        return f"http://{cred}127.0.0.1:{self.port}/video"

    @property
    def good(self) -> list[int]:
        """Indices of the whole JPEG parts of the script."""
        return [i for i, kind in enumerate(self.script) if kind in ("good", "nolength")]

    def _part(self, index: int, kind: str) -> bytes:
        head = f"--{self.boundary}\r\nContent-Type: image/jpeg\r\n".encode()
        if kind == "garbage":
            return self._rng.randbytes(3000)
        if kind == "junk":
            body = self._rng.randbytes(2000)
            return head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body + b"\r\n"
        jpeg = self._jpegs[index]
        length = {"good": len(jpeg), "short": len(jpeg) // 2, "long": len(jpeg) + 5000,
                  "truncated": len(jpeg) // 2}.get(kind)
        if kind == "truncated":
            jpeg = jpeg[:len(jpeg) // 2]
        if length is None:  # nolength
            return head + b"\r\n" + jpeg + b"\r\n"
        return head + f"Content-Length: {length}\r\n\r\n".encode() + jpeg + b"\r\n"

    async def _video(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.status is not None:
            return web.Response(status=self.status, text="refused\n")
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.Response(status=401, text="unauthorised\n",
                                    headers={"WWW-Authenticate": 'Basic realm="camera"'})
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/x-mixed-replace; boundary={self.boundary}"})
        await response.prepare(request)
        self.connections += 1
        with contextlib.suppress(ConnectionError):  # the client went away (aiohttp's reset error is one)
            await self._play(response)
        return response

    async def _play(self, response: web.StreamResponse) -> None:
        if self.stall:
            await asyncio.sleep(3600)
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            for i, kind in enumerate(self.script):
                await asyncio.sleep(max(0.0, start + i / self.fps - loop.time()))
                await response.write(self._part(i, kind))
                self.sent[kind] += 1
            if self.then != "repeat":
                break
        if self.then == "hold":
            await asyncio.sleep(3600)
        await response.write_eof()

    _serve = _Threaded._serve_video


class RtspRefuser(_Threaded):
    """An RTSP server at ``rtsp://127.0.0.1:<port>/cam`` answering ``RTSP/1.0 401 Unauthorized``
    (Basic challenge) to every request. ``requests`` counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def url(self, user: str | None = None, password: str | None = None) -> str:
        cred = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}/cam"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                cseq = next((line for line in head.split(b"\r\n") if line.lower().startswith(b"cseq:")), b"CSeq: 1")
                writer.write(b"RTSP/1.0 401 Unauthorized\r\n" + cseq +
                             b'\r\nWWW-Authenticate: Basic realm="camera"\r\nContent-Length: 0\r\n\r\n')
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _serve(self):  # noqa: ANN202
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

        async def close() -> None:
            server.close()
            await server.wait_closed()

        return close


class BytesServer(_Threaded):
    """Serves ``body`` with ``content_type`` at ``http://127.0.0.1:<port>/video`` (chunked,
    64 KiB at a time), to every request; ``requests`` counts them."""

    def __init__(self, body: bytes, content_type: str):
        super().__init__()
        self.body, self.content_type = body, content_type
        self.requests = 0

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video"

    async def _video(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for at in range(0, len(self.body), 1 << 16):
                await response.write(self.body[at:at + (1 << 16)])
            await response.write_eof()
        return response

    _serve = _Threaded._serve_video
