"""Grabber building blocks without video files: sampler, masks, back-off, synthetic scene."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import simplejpeg

from vigie.core.cameras import CameraConfig, ReconnectConfig
from vigie.grabber.frames import CameraPipeline
from vigie.grabber.masking import apply_masks, rasterize_masks
from vigie.grabber.sampler import PtsSampler
from vigie.grabber.sources import Backoff
from vigie.grabber.synthetic import SyntheticScene, parse_synthetic_url


# --------------------------------------------------------------------------- sampler
@pytest.mark.parametrize("src_fps, target, seconds, expected", [
    (30000 / 1001, 5, 39.0, 195),
    (25, 5, 10, 50),
    (25, 2, 10, 20),
    (5, 5, 10, 50),
    (10, 30, 10, 100),  # target above source rate: every frame
])
def test_sampler_rate_by_pts(src_fps, target, seconds, expected):
    s = PtsSampler(target)
    kept = [k / src_fps for k in range(int(seconds * src_fps)) if s.keep(k / src_fps)]
    assert abs(len(kept) - expected) <= 1
    # at most one frame per sampling slot: gaps never shorter than a period less the
    # 10 % jitter tolerance and one source frame
    assert np.all(np.diff(kept) >= 0.9 / target - 1 / src_fps - 1e-9)


def test_sampler_uses_timestamps_not_frame_counts():
    # variable frame rate: 50 fps for 2 s, then 10 fps for 2 s -> 5 fps throughout
    pts = [k / 50 for k in range(100)] + [2 + k / 10 for k in range(20)]
    s = PtsSampler(5)
    kept = [p for p in pts if s.keep(p)]
    assert len(kept) == 20
    per_second, _ = np.histogram(kept, bins=[0, 1, 2, 3, 4])
    assert all(abs(n - 5) <= 1 for n in per_second)


def test_sampler_tolerates_jitter_at_equal_rates():
    rng = np.random.default_rng(0)
    s = PtsSampler(5)
    pts = np.arange(100) / 5 + rng.uniform(-0.004, 0.004, 100)
    assert sum(s.keep(float(p)) for p in pts) == 100


def test_sampler_resyncs_on_backward_and_huge_forward_jumps():
    s = PtsSampler(5)
    assert [s.keep(p) for p in (10.0, 10.1, 10.2)] == [True, False, True]
    assert s.keep(0.05) is True  # backwards (reconnect, loop)
    assert s.keep(0.1) is False and s.keep(0.25) is True
    assert s.keep(5000.0) is True  # forward jump: kept, new grid
    assert s.keep(5000.1) is False and s.keep(5000.2) is True
    assert s.resyncs == 2
    with pytest.raises(ValueError):
        PtsSampler(0)


# --------------------------------------------------------------------------- masks
def _brute_force(poly, w, h):
    out = np.zeros((h, w), bool)
    for j in range(h):
        for i in range(w):
            x, y, inside = i + 0.5, j + 0.5, False
            for (xa, ya), (xb, yb) in zip(poly, poly[1:] + poly[:1]):
                if (ya <= y) != (yb <= y) and xa + (y - ya) / (yb - ya) * (xb - xa) > x:
                    inside = not inside
            out[j, i] = inside
    return out


def test_rasterize_matches_point_in_polygon_and_caches():
    rng = np.random.default_rng(1)
    for _ in range(4):
        poly = [tuple(p) for p in rng.uniform(-5, 45, (7, 2))]  # self-intersecting, partly outside
        got = rasterize_masks([poly], (40, 30), (40, 30))
        assert got.shape == (30, 40) and got.dtype == bool
        assert np.array_equal(got, _brute_force(poly, 40, 30))
    square = [[10, 10], [30, 10], [30, 30], [10, 30]]
    small = rasterize_masks([square], (40, 40), (20, 20))  # scaled by 1/2
    assert small.sum() == 100 and small[5:15, 5:15].all()
    assert rasterize_masks([square], (40, 40), (20, 20)) is small  # cached
    assert not small.flags.writeable
    with pytest.raises(ValueError):
        rasterize_masks([[[0, 0], [1, 1]]], (40, 40), (20, 20))


def test_apply_masks_blacks_out_in_place():
    img = np.full((20, 20, 3), 200, np.uint8)
    mask = rasterize_masks([[[0, 0], [10, 0], [10, 10], [0, 10]]], (20, 20), (20, 20))
    assert apply_masks(img, mask) is img
    assert img[:10, :10].max() == 0 and img[10:, :].min() == 200 and img[:, 10:].min() == 200
    with pytest.raises(ValueError):
        apply_masks(np.zeros((10, 10, 3), np.uint8), mask)


# --------------------------------------------------------------------------- back-off
def test_backoff_grows_caps_and_jitters():
    b = Backoff(ReconnectConfig(initial_s=0.5, max_s=4, jitter=0))
    assert [b.next() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    b.reset()
    assert b.next() == 0.5
    j = Backoff(ReconnectConfig(initial_s=1, max_s=30, jitter=0.2))
    delays = [j.next() for _ in range(3)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4 and 3.2 <= delays[2] <= 4.8


# --------------------------------------------------------------------------- synthetic
def test_synthetic_url_parsing():
    p = parse_synthetic_url("synthetic://scene?seed=7&w=320&h=240&fps=10&leave_at=2&duration=3")
    assert (p.seed, p.w, p.h, p.fps, p.leave_at, p.duration) == (7, 320, 240, 10.0, 2.0, 3.0)
    for bad in ("synthetic://other", "synthetic://scene?w=5", "synthetic://scene?colour=red",
                "synthetic://scene?fps=x"):
        with pytest.raises(ValueError):
            parse_synthetic_url(bad)


def test_synthetic_scene_moves_leaves_an_object_and_is_marked():
    scene = SyntheticScene(parse_synthetic_url("synthetic://scene?seed=3&leave_at=2"))
    a, b = scene.render(1.0), scene.render(1.5)
    assert a.shape == (480, 720, 3) and a.dtype == np.uint8
    moving = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 40
    assert moving.sum() > 500  # people walked
    assert scene.object_box(1.0) is None
    x0, y0, x1, y1 = scene.object_box(4.0)
    for t in (4.0, 9.0):  # the dark box stays where it was left
        assert scene.render(t)[y0 + 2:y1 - 2, x0 + 2:x1 - 2].mean() < 60
    corner = a[:10, :40].reshape(-1, 3)
    assert (corner == (255, 215, 0)).all(axis=1).any() and (corner == 0).all(axis=1).any()  # striped marker


async def test_synthetic_pipeline_gives_requested_size_with_moving_content():
    cam = CameraConfig(id="syn", source="synthetic://scene?seed=3&w=320&h=240&fps=10&duration=3", fps=5)
    pipe = CameraPipeline(cam, as_fast_as_possible=True)
    frames = [f async for f in pipe.frames()]
    assert len(frames) == 15 and [f.seq for f in frames] == list(range(15))
    assert all((f.width, f.height) == (320, 240) for f in frames)  # width 640 > 320: never upscaled
    imgs = [simplejpeg.decode_jpeg(f.jpeg) for f in frames]
    assert imgs[0].shape == (240, 320, 3)
    assert np.mean([np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(imgs, imgs[1:])]) > 0.5
    assert pipe.stats.decoded == 30 and pipe.stats.sampled == 15 and pipe.stats.published == 15

    small = CameraConfig(id="syn2", source="synthetic://scene?w=720&h=480&duration=1", fps=5, width=160)
    out = [f async for f in CameraPipeline(small, as_fast_as_possible=True).frames()]
    assert {(f.width, f.height) for f in out} == {(160, 107)}


async def test_synthetic_is_paced_in_real_time_unless_as_fast_as_possible():
    cam = CameraConfig(id="syn", source="synthetic://scene?w=160&h=120&fps=10&duration=1.2", fps=5)
    t0 = time.monotonic()
    frames = [f async for f in CameraPipeline(cam).frames()]
    paced = time.monotonic() - t0
    assert len(frames) == 6 and 0.9 <= paced < 3.0
    gaps = np.diff([f.capture_ns for f in frames]) / 1e9
    assert np.all(gaps > 0.1)
    longer = cam.model_copy(update={"source": "synthetic://scene?w=160&h=120&fps=10&duration=3"})
    t0 = time.monotonic()
    assert len([f async for f in CameraPipeline(longer, as_fast_as_possible=True).frames()]) == 15
    assert time.monotonic() - t0 < 1.5  # 3 s of scene, not paced


async def test_closing_the_iterator_stops_an_infinite_source():
    cam = CameraConfig(id="syn", source="synthetic://scene?w=160&h=120", fps=5)
    pipe = CameraPipeline(cam, as_fast_as_possible=True)
    agen = pipe.frames()
    for _ in range(3):
        await agen.__anext__()
    await agen.aclose()
    thread = pipe.source._thread
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
