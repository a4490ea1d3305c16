"""Live sources against misbehaving cameras served on 127.0.0.1: MJPEG over HTTP with malformed
parts, credentials refused (HTTP 401/403, RTSP 401), a camera that stalls."""

from __future__ import annotations

import asyncio
import subprocess
import time

import numpy as np
import simplejpeg

from tests.support.mjpeg_server import BytesServer, MjpegServer, RtspRefuser, part_index
from vigie.core.cameras import CameraConfig
from vigie.grabber.frames import CameraPipeline

SECRET = "Pw-5e3cr3t"  # never to be seen in an error


class Consumer:
    """Consumes a pipeline in a background task, keeping every frame."""

    def __init__(self, pipeline: CameraPipeline):
        self.pipeline = pipeline
        self.stats = pipeline.stats
        self.frames: list = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for frame in self.pipeline.frames():
            self.frames.append(frame)

    async def until(self, condition, timeout: float) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not condition():
            if self.task.done():
                self.task.result()
                raise AssertionError("pipeline ended")
            assert time.monotonic() < deadline, f"timeout; stats={self.stats.snapshot()}"
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> "Consumer":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def camera(url: str, **kw) -> CameraConfig:  # noqa: ANN003
    return CameraConfig(**{"id": "cam", "source": url, "fps": 5, "timeout_s": 1,
                           "reconnect": {"initial_s": 0.2, "max_s": 1, "jitter": 0, "unauthorised_s": 0.5}, **kw})


def indices(frames: list) -> list[int]:
    return [part_index(simplejpeg.decode_jpeg(f.jpeg), 960) for f in frames]


async def test_mjpeg_at_5_fps_yields_every_good_part_and_skips_malformed_ones_without_reconnecting():
    """Defect: an MJPEG camera at 5 fps was published at about 1 frame per second (FFmpeg's
    mpjpeg timestamps trusted), and a part with a wrong Content-Length made it reconnect
    every 1.5 s forever. Parts are now timed by arrival, malformed ones counted and skipped."""
    script = ["good"] * 25
    for i, bad in zip((3, 7, 11, 15, 19), ("short", "long", "truncated", "garbage", "junk")):
        script[i] = bad
    script[22] = "nolength"  # a whole JPEG without Content-Length is good too
    with MjpegServer(script, fps=5) as server:
        async with Consumer(CameraPipeline(camera(server.url()))) as consumer:
            stats = consumer.stats
            await consumer.until(lambda: stats.decoded + stats.corrupt >= len(script), timeout=15)
            await asyncio.sleep(0.3)  # the last frame through masking and JPEG
            got = indices(consumer.frames)
        assert sum(server.sent.values()) == len(script) and server.connections == 1
    good = server.good
    assert len(good) == 20
    assert stats.corrupt == 5  # one per malformed part, none counted twice
    assert stats.connects == 1 and stats.reconnects == 0 and stats.failures == 0  # never reconnected
    assert stats.decoded == len(good) and stats.clock == "arrival"
    assert set(got) <= set(good) and got == sorted(set(got))  # only good parts, in order, no repeat
    assert len(got) >= len(good) - 2  # ~5 frames/s of the good parts (a 1 fps sampling gives ~5)
    assert {(f.width, f.height) for f in consumer.frames} == {(640, 360)}  # 960x540 resized to width 640
    assert np.all(np.diff([f.pts for f in consumer.frames]) > 0.15)


async def test_mjpeg_stall_after_headers_is_detected_by_timeout_s_and_reconnected_with_backoff():
    """Defect: a camera that accepts the connection and sends its headers, then nothing, must be
    detected by the camera's timeout_s and reconnected with back-off, with a clear error."""
    with MjpegServer([], stall=True) as server:
        async with Consumer(CameraPipeline(camera(server.url()))) as consumer:
            stats = consumer.stats
            await consumer.until(lambda: stats.stalls >= 3, timeout=15)
        assert server.connections >= 3
    assert stats.reconnects >= 3 and stats.failures >= 3 and stats.auth_failures == 0
    assert stats.backoff_s > 0.2  # the back-off grew (0.2, 0.4, 0.8...)
    assert "stalled: no valid part for" in stats.last_error and "timeout_s=1" in stats.last_error
    assert consumer.frames == []


async def test_mjpeg_camera_sending_only_garbage_parts_is_stalled_within_timeout_s():
    """Defect: a camera sending only malformed parts (5 a second) stayed 'starting' and healthy for 40 s (200
    malformed parts in a row before a reconnect; 200 s at 1 part a second): no valid part within timeout_s is
    now a stall, reconnected with back-off; the malformed parts are counted."""
    with MjpegServer(["junk"] * 40, fps=5) as server:  # parts whose body is random bytes
        async with Consumer(CameraPipeline(camera(server.url()))) as consumer:
            stats = consumer.stats
            await consumer.until(lambda: stats.stalls >= 1, timeout=6)
    assert stats.failures >= 1 and consumer.frames == [] and stats.corrupt >= 1
    assert "no valid part for" in stats.last_error and "timeout_s=1" in stats.last_error


async def test_mjpeg_stall_mid_stream_reconnects_and_streams_again():
    """Defect: a camera that stops sending parts in the middle of a stream (connection still
    open) must be reconnected after timeout_s, and stream again."""
    with MjpegServer(["good"] * 5, fps=5, then="hold") as server:
        async with Consumer(CameraPipeline(camera(server.url()))) as consumer:
            stats = consumer.stats
            await consumer.until(lambda: len(consumer.frames) >= 7, timeout=15)
            got = indices(consumer.frames)
    assert stats.stalls == 1 and stats.connects == 2
    assert got[:5] == [0, 1, 2, 3, 4] and got[5:7] == [0, 1]  # the camera's stream again, seq goes on
    assert [f.seq for f in consumer.frames[:7]] == list(range(7))


async def test_http_401_and_403_are_reported_unauthorised_with_a_slow_retry():
    """Defect: a camera answering 401 or 403 was retried as if it were down (back-off,
    state 'reconnecting'); it is now 'unauthorised', counted, retried every
    reconnect.unauthorised_s, and the password is not in the error."""
    with MjpegServer(["good"] * 50, fps=10, auth=("admin", SECRET)) as server:
        async with (Consumer(CameraPipeline(camera(server.url("admin", "wrong-" + SECRET)))) as refused,
                    Consumer(CameraPipeline(camera(server.url("admin", SECRET), id="ok"))) as accepted):
            await refused.until(lambda: refused.stats.auth_failures >= 3, timeout=10)
            await accepted.until(lambda: len(accepted.frames) >= 3, timeout=10)
    stats = refused.stats
    assert stats.unauthorised and not stats.connected and stats.reconnects == 0  # not the back-off path
    assert stats.backoff_s == 0.5  # reconnect.unauthorised_s (jitter 0)
    assert "camera cam: unauthorised: HTTP 401" in stats.last_error
    assert SECRET not in stats.last_error and "admin:***@" not in stats.last_error  # no URL, no password
    assert accepted.stats.connects == 1 and not accepted.stats.unauthorised  # Basic authentication works

    with MjpegServer([], status=403) as server:
        async with Consumer(CameraPipeline(camera(server.url("admin", SECRET)))) as forbidden:
            await forbidden.until(lambda: forbidden.stats.auth_failures >= 2, timeout=10)
        assert server.requests == forbidden.stats.auth_failures or server.requests == forbidden.stats.auth_failures + 1
    assert forbidden.stats.unauthorised and "HTTP 403" in forbidden.stats.last_error


async def test_rtsp_401_is_reported_unauthorised_with_a_slow_retry():
    """Defect: an RTSP camera answering 401 Unauthorized to DESCRIBE was retried as if it were
    down; it is now 'unauthorised' with a slow retry, and the password is not in the error."""
    with RtspRefuser() as server:
        async with Consumer(CameraPipeline(camera(server.url("admin", SECRET)))) as consumer:
            stats = consumer.stats
            await consumer.until(lambda: stats.auth_failures >= 2, timeout=10)
    assert stats.unauthorised and stats.reconnects == 0 and stats.backoff_s == 0.5
    assert "401 Unauthorized" in stats.last_error and SECRET not in stats.last_error
    assert server.requests >= 2


async def test_http_stream_with_timestamps_going_backwards_is_timed_by_arrival(tmp_path):
    """Defect: live sources trusted their timestamps. A stream over HTTP that is not MJPEG (here
    MPEG-TS, decoded by FFmpeg) is timed by its PTS while they increase, and by arrival from
    the first PTS that goes backwards (two segments both starting at PTS 0, back to back)."""
    segment = tmp_path / "segment.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "2",
                    "-c:v", "mpeg2video", "-g", "5", "-f", "mpegts", str(segment)], check=True)
    with BytesServer(segment.read_bytes() * 2, "video/mp2t") as server:  # sent at once: frames arrive in a burst
        cam = camera(server.url(), reconnect={"initial_s": 30, "max_s": 30})  # one connection in this test
        async with Consumer(CameraPipeline(cam)) as consumer:
            stats = consumer.stats
            await consumer.until(lambda: stats.reconnects >= 1, timeout=15)  # the body ended
    assert stats.decoded + stats.corrupt >= 39 and stats.connects == 1  # (a frame may break at the splice)
    assert stats.clock == "arrival"
    # The first segment (2 s at 10 fps) sampled to 5 fps by its PTS, burst or not: 10 frames;
    # the second one by arrival: its burst is a single instant, so about one frame.
    assert 10 <= stats.sampled <= 12
