"""The grabber's frame path against defective streams made with ffmpeg: resolution changes under privacy
masks, rotation metadata, degenerate sizes, JPEGs over the record size, packets before the first keyframe."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import av
import numpy as np
import pytest
import simplejpeg

from tests.streams import (cut_mid_gop_ts, ffmpeg, ffmpeg_decode_first, noise_video, resolution_change_ts,
                           rotated_video, still_folder)
from vigie.core.cameras import CameraConfig
from vigie.core.geometry import rasterize_outward, rasterize_polygons, resample_outward
from vigie.grabber.errors import SourceError
from vigie.grabber.frames import CameraPipeline, encode_within
from vigie.grabber.orientation import Orientation, Upright, rotation_matrix, orientation_from_matrix

SIZES = [(1280, 720), (704, 576), (1920, 1080)]
#: Masks drawn on a 1280x720 picture: a rectangle and a triangle, in normalised terms [0.25, 0.5] x [0.25, 0.5]
#: and the lower-left half of [0.6, 0.9] x [0.5, 0.9].
RECT = [[320, 180], [640, 180], [640, 360], [320, 360]]
TRIANGLE = [[768, 360], [768, 648], [1152, 648]]


async def collect(pipeline: CameraPipeline) -> list:
    out = []
    async with contextlib.aclosing(pipeline.frames()) as frames:
        async for frame in frames:
            out.append(frame)
    return out


def camera(source: Path, **kw) -> CameraConfig:
    return CameraConfig(id="cam", source=str(source), realtime=False, **kw)


# --------------------------------------------------------------------------- masks and resolution changes
def test_outward_rounding_never_uncovers_a_reference_pixel():
    """Defect: masks drifted on a resolution change. Proof on random polygons and sizes (down, up, other aspect
    ratios): every pixel covered at the reference size has its whole region covered at the other size, and through
    an intermediate size (the decoded frame before its resize) every pixel covered there too."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        rw, rh = (int(v) for v in rng.integers(8, 60, 2))
        dw, dh = (int(v) for v in rng.integers(3, 90, 2))
        poly = [tuple(p) for p in rng.uniform(-2, 1, (5, 2)) * (rw + 2, rh + 2) + (rw, rh) * rng.uniform(0, 1, 2)]
        ref = rasterize_polygons([poly], (rw, rh), (rw, rh))
        got = rasterize_outward([poly], (rw, rh), (dw, dh))
        assert got.shape == (dh, dw) and not got.flags.writeable
        for j, i in zip(*np.nonzero(ref)):
            # destination pixels overlapping the region [i, i+1] x [j, j+1] of the reference, by a positive area
            cols = [u for u in range(dw) if u * rw < (i + 1) * dw and (u + 1) * rw > i * dw]
            rows = [v for v in range(dh) if v * rh < (j + 1) * dh and (v + 1) * rh > j * dh]
            assert got[np.ix_(rows, cols)].all(), (poly, (rw, rh), (dw, dh), (i, j))
        assert (got | ~rasterize_polygons([poly], (rw, rh), (dw, dh))).all()  # pixel centres inside stay covered
        vw, vh = (int(v) for v in rng.integers(3, 90, 2))  # resized from a third size: covered through it
        via = rasterize_outward([poly], (rw, rh), (vw, vh))
        through = rasterize_outward([poly], (rw, rh), (dw, dh), via_size=(vw, vh))
        assert (through | ~got).all()
        for j, i in zip(*np.nonzero(via)):
            cols = [u for u in range(dw) if u * vw < (i + 1) * dw and (u + 1) * vw > i * dw]
            rows = [v for v in range(dh) if v * vh < (j + 1) * dh and (v + 1) * vh > j * dh]
            assert through[np.ix_(rows, cols)].all()
    square = np.zeros((4, 4), bool)
    square[1:3, 1:3] = True
    assert resample_outward(square, (3, 3)).sum() == 9  # rounds outward, never inward
    assert np.array_equal(resample_outward(square, (8, 8)), np.kron(square, np.ones((2, 2), bool)))


def expected_region(size: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of RECT's region ([0.25, 0.5] of each side) in a frame of ``size``, rounded outward."""
    w, h = size
    return slice(int(0.25 * h), -(-h // 2)), slice(int(0.25 * w), -(-w // 2))


@pytest.mark.parametrize("reference", [[1280, 720], None], ids=["reference", "first-frame"])
async def test_masks_stay_on_their_windows_when_the_resolution_changes(tmp_path, caplog, reference):
    """Defect: privacy masks were drawn in pixels of whatever size arrived, so after 1280x720 -> 704x576 ->
    1920x1080 the windows they hid were published unmasked. White stream, masks drawn on 1280x720: at every size,
    the masked area is black in the published JPEGs, the rest white; the change is counted and the size shown."""
    stream = resolution_change_ts(tmp_path / "profiles.ts", SIZES)
    cam = camera(stream, fps=5, privacy_masks=[{"name": "window", "polygon": RECT}, {"polygon": TRIANGLE}],
                 privacy_masks_reference_size=reference)
    pipe = CameraPipeline(cam, as_fast_as_possible=True)
    with caplog.at_level(logging.WARNING, logger="vigie.grabber"):
        frames = await collect(pipe)
    sizes = [(f.width, f.height) for f in frames]
    assert set(sizes) == {(640, 360), (640, 524)} and len(frames) >= 13  # 3 s at 5 fps
    assert {(f.source_width, f.source_height) for f in frames} == set(SIZES)  # the camera's own sizes, on the frame
    for f in frames:
        img = simplejpeg.decode_jpeg(f.jpeg, colorspace="RGB").astype(int)
        rows, cols = expected_region((f.width, f.height))
        assert img[rows, cols].max() <= 40, (f.width, f.height)  # black to the edge (JPEG ringing: <= 40)
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        u, v = (xx + 0.5) / w, (yy + 0.5) / h
        tri = (u >= 0.6) & (v <= 0.9) & ((v - 0.5) / 0.4 >= (u - 0.6) / 0.3)  # inside, normalised
        assert img[tri].max() <= 40
        far = np.ones((h, w), bool)  # more than 8 px away from both masks: untouched white
        far[max(0, rows.start - 8):rows.stop + 8, max(0, cols.start - 8):cols.stop + 8] = False
        far[int(0.5 * h) - 8:int(0.9 * h) + 9, int(0.6 * w) - 8:int(0.9 * w) + 9] = False
        assert img[far].min() >= 235
        assert f.masks_applied == ["window", "mask1"]
    stats = pipe.stats
    assert stats.resolution_changes == 2 and stats.source_size == [1920, 1080]
    assert stats.masks_reference == [1280, 720] and stats.masks_reference_assumed is (reference is None)
    changes = [r.getMessage() for r in caplog.records if "resolution changed" in r.getMessage()]
    assert changes == ["camera cam: source resolution changed from 1280x720 to 704x576; privacy masks scaled "
                       "from their 1280x720 reference",
                       "camera cam: source resolution changed from 704x576 to 1920x1080; privacy masks scaled "
                       "from their 1280x720 reference"]
    unset = [r for r in caplog.records if "privacy_masks_reference_size is not set" in r.getMessage()]
    assert len(unset) == (1 if reference is None else 0)


def test_mask_missing_its_reference_frame_is_a_config_error():
    """Defect: masks had no reference size. One given is validated: a mask outside that frame is refused."""
    with pytest.raises(ValueError, match=r"privacy_masks\[0\] \('far'\) covers no pixel of its 640x360 reference"):
        CameraConfig(id="c", source="x.mp4", privacy_masks_reference_size=[640, 360],
                     privacy_masks=[{"name": "far", "polygon": [[700, 10], [800, 10], [800, 90]]}])
    with pytest.raises(ValueError):
        CameraConfig(id="c", source="x.mp4", privacy_masks_reference_size=[8, 8])


# --------------------------------------------------------------------------- rotation
@pytest.mark.parametrize("degrees,hflip,vflip", [(0, False, False), (90, False, False), (180, False, False),
                                                 (-90, False, False), (0, True, False), (0, False, True),
                                                 (90, True, False), (-90, True, False)])
def test_display_matrix_turns_frames_as_ffmpeg_does(tmp_path, degrees, hflip, vflip):
    """Defect: rotation metadata was ignored. For each of the eight orientations a display matrix can ask for,
    the upright frame equals what the ffmpeg command line shows (its autorotate), pixel for pixel (lossless)."""
    path = rotated_video(tmp_path / "turned.mkv", degrees, hflip, vflip, frames=1, size=(64, 48), codec="ffv1")
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    image, src_size = Upright("cam")(frame, lambda w, h: (w, h))
    expected = ffmpeg_decode_first(path)
    assert image.shape == expected.shape and src_size == (expected.shape[1], expected.shape[0])
    assert np.array_equal(image, expected)
    if not (hflip or vflip):  # the fallback for frames whose side data PyAV cannot list: rotation alone
        fallback = rotation_matrix(frame.rotation)
        assert (orientation_from_matrix(fallback)[0] if fallback else Orientation()) == Upright("c").orientation(frame)


async def test_camera_mounted_sideways_is_published_upright_and_masked_upright(tmp_path):
    """Defect: a camera mounted sideways was published sideways. An H.264 MP4 of a 320x180 picture whose display
    matrix asks for a quarter turn is published upright (180x320, as ffmpeg shows it), masks in upright pixels."""
    path = rotated_video(tmp_path / "sideways.mp4", 90)
    upright = ffmpeg_decode_first(path).astype(int)
    assert upright.shape == (320, 180, 3) and upright[-40:, :20].min() > 200  # the white block turned bottom-left
    cam = camera(path, fps=10, privacy_masks_reference_size=[180, 320],
                 privacy_masks=[{"polygon": [[0, 0], [90, 0], [90, 40], [0, 40]]}])
    pipe = CameraPipeline(cam, as_fast_as_possible=True)
    frames = await collect(pipe)
    assert len(frames) == 5 and {(f.width, f.height) for f in frames} == {(180, 320)}
    img = simplejpeg.decode_jpeg(frames[0].jpeg, colorspace="RGB").astype(int)
    assert img[:40, :90].mean(axis=2).max() <= 30  # the mask, top left of the upright picture (4:2:0 ringing)
    diff = np.abs(img - upright)[48:, :]  # away from the mask
    assert np.mean(diff) < 3 and pipe.stats.source_size == [180, 320]


# --------------------------------------------------------------------------- degenerate sizes
async def test_degenerate_frames_are_refused_counted_and_the_camera_goes_on(tmp_path):
    """Defect: frames of 1x1 or 2x1080 pixels were published as they came. They are refused and counted, the
    frames around them published."""
    folder = still_folder(tmp_path / "stills", [(320, 240)] * 3 + [(1, 1), (2, 1080), (15, 200)] + [(320, 240)] * 3)
    pipe = CameraPipeline(camera(folder, fps=10, folder_fps=10), as_fast_as_possible=True)
    frames = await collect(pipe)
    assert [(f.width, f.height) for f in frames] == [(320, 240)] * 6
    assert pipe.stats.degenerate == 3 and pipe.stats.resolution_changes == 0
    assert "15x200 frame under the minimum size of 16 pixels" in pipe.stats.last_error
    loose = CameraPipeline(camera(folder, fps=10, folder_fps=10, min_frame_size=1, max_aspect_ratio=100),
                           as_fast_as_possible=True)  # the limits are the camera's settings
    assert len(await collect(loose)) == 8 and loose.stats.degenerate == 1
    assert "2x1080 frame with an aspect ratio over 100:1" in loose.stats.last_error


async def test_a_stream_of_only_degenerate_frames_fails_its_camera_clearly(tmp_path):
    """Defect: degenerate sizes were published; a camera giving nothing else fails with a clear error."""
    folder = still_folder(tmp_path / "stills", [(2, 1080)] * 3)
    pipe = CameraPipeline(camera(folder, fps=10, folder_fps=10), as_fast_as_possible=True)
    with pytest.raises(SourceError, match=r"camera cam: stream ended and every frame was degenerate \(3\), the "
                                          r"last a 2x1080 frame under the minimum size of 16 pixels"):
        await collect(pipe)


# --------------------------------------------------------------------------- JPEG over the record size
async def test_oversize_jpeg_is_reencoded_lower_or_dropped_never_failing_the_camera(tmp_path):
    """Defect: one JPEG over the broker's message size failed its camera for good. A 1280x720 noise stream: with a
    limit between its quality-60 and quality-80 sizes every frame is published re-encoded under the limit; with a
    limit under its quality-10 size every frame is dropped and counted, and the stream ends normally."""
    path = noise_video(tmp_path / "noise.mkv", (1280, 720), frames=3)
    with av.open(str(path)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    q80, q60, q10 = (len(encode_within(first, q, 1 << 30)[0]) for q in (80, 60, 10))
    assert q10 < q60 < q80
    limit = (q60 + q80) // 2
    pipe = CameraPipeline(camera(path, fps=5, width=1280), as_fast_as_possible=True, max_jpeg_bytes=limit)
    frames = await collect(pipe)
    assert len(frames) == 3 and all(len(f.jpeg) <= limit for f in frames)
    assert pipe.stats.reencoded == 3 and pipe.stats.oversize_dropped == 0
    tiny = CameraPipeline(camera(path, fps=5, width=1280), as_fast_as_possible=True, max_jpeg_bytes=q10 // 2)
    assert await collect(tiny) == []
    assert tiny.stats.oversize_dropped == 3 and "even at JPEG quality 10: dropped" in tiny.stats.last_error


# --------------------------------------------------------------------------- packets before the first keyframe
async def test_packets_before_the_first_keyframe_are_counted(tmp_path):
    """Defect: undecodable packets before the first keyframe were not counted (the decoder swallows them without
    an error). A transport stream cut mid-GOP: each packet before its first keyframe is counted, then it decodes."""
    path = cut_mid_gop_ts(tmp_path / "cut.ts")
    before = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.is_keyframe:
                break
            before += bool(packet.size)
    assert before > 10
    pipe = CameraPipeline(camera(path, fps=25), as_fast_as_possible=True)
    frames = await collect(pipe)
    assert pipe.stats.skipped_before_keyframe == before and len(frames) >= 45


def test_frames_with_side_data_pyav_does_not_know_are_still_turned(tmp_path):
    """Defect: rotation metadata was ignored; reading it must not break frames whose other side data PyAV cannot
    name (a TIFF's EXIF, type 31 with FFmpeg 8): those are published, turned by their rotation alone."""
    tif = tmp_path / "still.tif"
    ffmpeg("-i", str(still_folder(tmp_path / "stills", [(64, 48)]) / "001.png"), str(tif))
    with av.open(str(tif)) as container:
        frame = next(container.decode(video=0))
    with pytest.raises(ValueError):
        list(frame.side_data)  # the PyAV limitation worked around
    image, size = Upright("cam")(frame, lambda w, h: (w, h))
    assert image.shape == (48, 64, 3) and size == (64, 48) and image.min() >= 250


async def test_no_light_of_a_masked_window_reaches_a_published_pixel_after_resizing(tmp_path):
    """Defect: masks drifted on a resolution change. Frames are resized before they are masked: a decoded pixel
    straddling a mask's edge (1920x1080 here: the window's edges fall mid-pixel) is mixed into the published pixels
    around it, so the mask is taken through the decoded size. A black stream with a lit window exactly under the mask
    (at 1280x720, 704x576 and 1920x1080, resized to 640 wide) is published entirely black."""
    ref = (1280, 720)
    window = [[333, 187], [651, 187], [651, 365], [333, 365]]  # edges between pixels at 704x576 and 1920x1080
    box = (333 / ref[0], 187 / ref[1], 651 / ref[0], 365 / ref[1])
    stream = resolution_change_ts(tmp_path / "window.ts", SIZES, colour="black", box=box)
    cam = camera(stream, fps=5, privacy_masks_reference_size=list(ref), privacy_masks=[{"polygon": window}])
    pipe = CameraPipeline(cam, as_fast_as_possible=True)
    frames = await collect(pipe)
    assert {(f.width, f.height) for f in frames} == {(640, 360), (640, 524)} and len(frames) >= 13
    for f in frames:
        img = simplejpeg.decode_jpeg(f.jpeg, colorspace="GRAY")
        assert img.max() <= 4, ((f.width, f.height), np.argwhere(img > 4)[:5].tolist())
    plain = await collect(CameraPipeline(camera(stream, fps=5), as_fast_as_possible=True))
    assert min(simplejpeg.decode_jpeg(f.jpeg, colorspace="GRAY").max() for f in plain) >= 200  # the window is lit
