"""Grabber sources and pipeline on the real ABODA clip, damaged copies, and dead RTSP URLs."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from tests.clips import DATA
from vigie.core.cameras import CameraConfig
from vigie.grabber.errors import SourceError
from vigie.grabber.frames import CameraPipeline
from vigie.grabber.sources import open_source

CLIP = DATA / "aboda_video4" / "video4.avi"  # 720x480, 29.97 fps, 1169 frames, 39.0 s, MPEG-4 part 2
needs_clip = pytest.mark.skipif(not CLIP.exists(), reason=f"real clip not available: {CLIP} (../shared/data absent)")


async def collect(pipeline: CameraPipeline, limit: int | None = None) -> list:
    out = []
    async with contextlib.aclosing(pipeline.frames()) as frames:  # stops the decode thread on break
        async for frame in frames:
            out.append(frame)
            if limit is not None and len(out) >= limit:
                break
    return out


async def run_until(pipeline: CameraPipeline, condition, timeout: float) -> tuple[float, list]:
    """Consume ``pipeline`` in a task until ``condition(stats, frames)``; returns (elapsed s, frames)."""
    frames: list = []

    async def consume():
        async for f in pipeline.frames():
            frames.append(f)

    task = asyncio.create_task(consume())
    t0 = time.monotonic()
    try:
        while not condition(pipeline.stats, frames):
            if task.done():
                task.result()  # raise the pipeline's error
                raise AssertionError("pipeline ended before the condition held")
            assert time.monotonic() - t0 < timeout, f"timeout; stats={pipeline.stats.snapshot()}"
            await asyncio.sleep(0.02)
        return time.monotonic() - t0, frames
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@needs_clip
async def test_file_sampled_to_5_fps_keeps_aspect_and_encodes_jpeg():
    pipe = CameraPipeline(CameraConfig(id="aboda-4", source=str(CLIP), fps=5), as_fast_as_possible=True)
    frames = await collect(pipe)
    assert abs(len(frames) - 195) <= 3  # 39 s at 5 fps
    pts = [f.pts for f in frames]
    assert np.all(np.diff(pts) > 0.15) and pts[-1] > 38.5
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert {(f.width, f.height) for f in frames} == {(640, 427)}
    for f in frames[::40]:
        img = simplejpeg.decode_jpeg(f.jpeg, colorspace="RGB")
        assert img.shape == (427, 640, 3) and img.dtype == np.uint8 and img.std() > 10
    now = time.time_ns()
    assert all(now - 60e9 < f.capture_ns <= now for f in frames)
    assert pipe.stats.decoded >= 1160 and pipe.stats.published == len(frames) and pipe.stats.corrupt == 0


@needs_clip
async def test_file_source_alone_yields_native_frames_and_plays_in_real_time():
    source = open_source(CameraConfig(id="aboda-4", source=str(CLIP)))
    t0, items = time.monotonic(), []
    async with contextlib.aclosing(source.frames()) as frames:
        async for pts, image in frames:
            items.append((pts, image))
            if len(items) == 20:
                break
    elapsed = time.monotonic() - t0
    assert items[0][1].shape == (480, 720, 3) and items[0][1].dtype == np.uint8
    assert np.all(np.diff([p for p, _ in items]) > 0)
    assert elapsed >= 0.9 * (items[-1][0] - items[0][0])  # paced by PTS (20 frames ~ 0.63 s)


@needs_clip
async def test_privacy_mask_is_black_after_jpeg_round_trip_and_the_rest_unchanged():
    poly = [[100, 50], [420, 50], [420, 260], [100, 260]]  # source pixels (720x480)
    base = dict(id="aboda-4", source=str(CLIP), fps=1)
    masked_cam = CameraConfig(**base, privacy_masks=[{"name": "windows", "polygon": poly}, {"polygon": poly[:3]}])
    masked = await collect(CameraPipeline(masked_cam, as_fast_as_possible=True), limit=5)
    plain = await collect(CameraPipeline(CameraConfig(**base), as_fast_as_possible=True), limit=5)
    sx = 640 / 720
    x0, x1, y0, y1 = int(100 * sx), int(420 * sx), int(50 * 427 / 480), int(260 * 427 / 480)
    for m, p in zip(masked, plain, strict=True):
        assert m.masks_applied == ["windows", "mask1"] and p.masks_applied == []
        a = simplejpeg.decode_jpeg(m.jpeg).astype(int)
        b = simplejpeg.decode_jpeg(p.jpeg).astype(int)
        assert a[y0 + 4:y1 - 4, x0 + 4:x1 - 4].max() < 16  # black inside (JPEG tolerance)
        assert b[y0 + 4:y1 - 4, x0 + 4:x1 - 4].mean() > 60  # ... where the scene is not black
        outside = np.ones(a.shape[:2], bool)
        outside[max(0, y0 - 16):y1 + 16, max(0, x0 - 16):x1 + 16] = False  # JPEG blocks touching the mask
        assert np.abs(a - b)[outside].max() <= 1


def damaged_copy(tmp_path: Path) -> Path:
    """The clip with 8 KiB of random bytes in the middle (about 19 s in)."""
    damaged = tmp_path / "damaged.avi"
    shutil.copyfile(CLIP, damaged)
    size = damaged.stat().st_size
    with open(damaged, "r+b") as f:
        f.seek(size // 2)
        f.write(random.Random(1).randbytes(8192))
    return damaged


@needs_clip
async def test_corrupt_bytes_are_counted_and_the_stream_goes_on(tmp_path):
    damaged = damaged_copy(tmp_path)
    pipe = CameraPipeline(CameraConfig(id="damaged", source=str(damaged), fps=5), as_fast_as_possible=True)
    frames = await collect(pipe)
    assert pipe.stats.corrupt > 0
    assert len(frames) >= 185
    assert sum(f.pts > 25 for f in frames) >= 60  # well beyond the damage
    assert simplejpeg.decode_jpeg(frames[-1].jpeg).shape == (427, 640, 3)


@needs_clip
async def test_looping_file_keeps_pts_increasing():
    cam = CameraConfig(id="aboda-loop", source=str(CLIP), fps=5, loop=True)
    frames = await collect(CameraPipeline(cam, as_fast_as_possible=True), limit=260)
    pts = [f.pts for f in frames]
    assert len(frames) == 260 and pts[-1] > 50  # went past the 39 s end...
    assert np.all(np.diff(pts) > 0.15)  # ...with continuous timestamps, still ~5 fps


async def test_missing_file_fails_at_once_naming_the_camera(tmp_path):
    pipe = CameraPipeline(CameraConfig(id="cam-missing", source=str(tmp_path / "nope.avi")))
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=rf"^camera cam-missing: file not found: {tmp_path}/nope.avi$"):
        await collect(pipe)
    assert time.monotonic() - t0 < 1
    assert pipe.stats.reconnects == 0


async def test_unreadable_file_fails_naming_the_camera(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(SourceError, match=r"^camera cam-junk: cannot open file .*junk.avi"):
        await collect(CameraPipeline(CameraConfig(id="cam-junk", source=str(junk))))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_rtsp_fails_fast_and_retries_with_backoff():
    cam = CameraConfig(id="cam-down", source=f"rtsp://127.0.0.1:{closed_port()}/cam",
                       reconnect={"initial_s": 0.1, "max_s": 0.8, "jitter": 0})
    pipe = CameraPipeline(cam)
    delays = []

    def four_attempts(stats, frames):
        if stats.backoff_s and (not delays or delays[-1] != stats.backoff_s):
            delays.append(stats.backoff_s)
        return stats.reconnects >= 4

    elapsed, frames = await run_until(pipe, four_attempts, timeout=5)
    assert frames == [] and elapsed < 3  # 0.1 + 0.2 + 0.4 s of back-off, refusals are immediate
    assert delays[:3] == [0.1, 0.2, 0.4]
    err = pipe.stats.last_error
    assert err.startswith("camera cam-down: cannot open rtsp://127.0.0.1:") and "refused" in err.lower()
    assert not pipe.stats.connected and pipe.stats.failures >= 4


async def test_silent_rtsp_server_times_out_within_timeout_s():
    with socket.socket() as server:  # accepts TCP connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        cam = CameraConfig(id="cam-mute", source=f"rtsp://127.0.0.1:{server.getsockname()[1]}/cam",
                           timeout_s=1, reconnect={"initial_s": 0.1, "max_s": 0.2})
        pipe = CameraPipeline(cam)
        elapsed, _ = await run_until(pipe, lambda st, fr: st.reconnects >= 2, timeout=8)
    assert 1.5 < elapsed < 4.5  # two attempts of ~1 s each, not forever
    assert "no answer within" in pipe.stats.last_error
