"""The grabber against a real RTSP server (GStreamer's GstRtspServer serving the ABODA clip)."""

from __future__ import annotations

import asyncio
import signal
import time

import numpy as np
import pytest
import simplejpeg

from tests.clips import DATA
from vigie.chaos import rtsp_server as rtsp  # the real RTSP server (GStreamer), as make chaos uses it
from vigie.core.cameras import CameraConfig
from vigie.grabber.frames import CameraPipeline

CLIP = DATA / "aboda_video4" / "video4.avi"

_why_not = rtsp.rtsp_server_unavailable() if CLIP.exists() else f"real clip not available: {CLIP}"
pytestmark = pytest.mark.skipif(_why_not is not None, reason=f"RTSP tests: {_why_not}")


class Consumer:
    """Consumes a pipeline in a background task, keeping every frame."""

    def __init__(self, pipeline: CameraPipeline):
        self.pipeline = pipeline
        self.frames: list = []
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        async for f in self.pipeline.frames():
            self.frames.append(f)

    async def until(self, condition, timeout: float) -> float:
        t0 = time.monotonic()
        while not condition():
            if self.task.done():
                self.task.result()
                raise AssertionError("pipeline ended")
            assert time.monotonic() - t0 < timeout, f"timeout; stats={self.pipeline.stats.snapshot()}"
            await asyncio.sleep(0.02)
        return time.monotonic() - t0

    async def close(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def camera(url: str, **kw) -> CameraConfig:
    reconnect = {"initial_s": 0.2, "max_s": 1.0, "jitter": 0.1, **kw.pop("reconnect", {})}
    return CameraConfig(id="rtsp-cam", source=url, fps=5, timeout_s=2, reconnect=reconnect, **kw)


async def test_rtsp_frames_then_reconnect_after_server_restart():
    server = rtsp.RtspServer(CLIP)
    await asyncio.to_thread(server.start)  # first run transcodes the clip to H.264 (cached)
    consumer = Consumer(CameraPipeline(camera(server.url)))
    stats = consumer.pipeline.stats
    try:
        first = await consumer.until(lambda: len(consumer.frames) >= 8, timeout=20)
        assert first < 15
        before = list(consumer.frames)
        assert {(f.width, f.height) for f in before} == {(640, 427)}
        assert np.all(np.diff([f.pts for f in before]) > 0.15)  # ~5 fps by PTS
        assert simplejpeg.decode_jpeg(before[-1].jpeg).std() > 10
        assert stats.connects == 1 and stats.connected

        server.kill()  # the camera crashes: no TEARDOWN
        await consumer.until(lambda: stats.failures >= 3, timeout=10)  # refused while down
        assert not stats.connected and stats.backoff_s > 0.2  # back-off grew
        assert "refused" in stats.last_error.lower()

        await asyncio.to_thread(server.start)  # same port
        n = len(consumer.frames)
        back = await consumer.until(lambda: len(consumer.frames) >= n + 5, timeout=15)
        assert back < 10
        after = consumer.frames[n:]
        assert stats.connects == 2 and stats.failures == 0 and stats.connected
        assert after[0].pts < before[-1].pts  # a new session starts the clip again...
        assert [f.seq for f in consumer.frames] == list(range(len(consumer.frames)))  # ...seq goes on
        assert {(f.width, f.height) for f in after} == {(640, 427)}
    finally:
        await consumer.close()
        server.stop()


async def test_rtsp_stalled_server_is_detected_by_the_read_timeout():
    with rtsp.RtspServer(CLIP) as server:
        consumer = Consumer(CameraPipeline(camera(server.url)))
        stats = consumer.pipeline.stats
        try:
            await consumer.until(lambda: len(consumer.frames) >= 3, timeout=20)
            server.proc.send_signal(signal.SIGSTOP)  # frozen camera: connection open, no data
            try:
                stalled = await consumer.until(lambda: stats.reconnects >= 1, timeout=10)
            finally:
                server.proc.send_signal(signal.SIGCONT)
            assert stalled < 8  # timeout_s=2 (plus frames already buffered)
            await consumer.until(lambda: stats.connects >= 2 and stats.connected, timeout=15)
        finally:
            await consumer.close()


async def test_rtsp_with_credentials_streams_and_wrong_ones_are_unauthorised():
    """Defect: an RTSP camera refusing the credentials (401) was retried as if it were down; it is
    now 'unauthorised' with a slow retry and no password in its error, while the right
    credentials stream (timed by the stream's PTS)."""
    secret = "Rtsp-S3cret"
    with rtsp.RtspServer(CLIP, auth=f"viewer:{secret}") as server:
        right = Consumer(CameraPipeline(camera(server.url_as("viewer", secret))))
        wrong = Consumer(CameraPipeline(camera(server.url_as("viewer", "not-" + secret),
                                               reconnect={"unauthorised_s": 0.5, "jitter": 0})))
        try:
            await right.until(lambda: len(right.frames) >= 5, timeout=20)
            await wrong.until(lambda: wrong.pipeline.stats.auth_failures >= 2, timeout=10)
        finally:
            await right.close()
            await wrong.close()
    stats = wrong.pipeline.stats
    assert stats.unauthorised and stats.reconnects == 0 and stats.connects == 0 and stats.backoff_s == 0.5
    assert "unauthorised" in stats.last_error and "401" in stats.last_error and secret not in stats.last_error
    assert right.pipeline.stats.clock == "pts" and not right.pipeline.stats.unauthorised
    assert np.all(np.diff([f.pts for f in right.frames]) > 0.15)  # ~5 fps by PTS
