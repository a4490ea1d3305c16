"""The grabber's YUV path (decoder -> libswscale -> masks -> JPEG, no RGB): only sampled frames are converted,
odd sizes encode the same bytes whatever lies past the planes, masks black out luma and chroma, and the bench's
synthetic clip goes through it. Not timed: the CPU figures are ``vigie bench``'s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np
import simplejpeg

import vigie.grabber.orientation as orientation
from vigie.core.cameras import CameraConfig
from vigie.grabber.bench import synthetic_clip
from vigie.grabber.frames import CameraPipeline
from vigie.grabber.planes import Yuv420, apply_masks_planes, chroma_mask, encode_planes


async def _collect(pipeline: CameraPipeline) -> list:
    return [frame async for frame in pipeline.frames()]


def test_only_the_frames_the_sampler_keeps_are_converted(tmp_path: Path, monkeypatch) -> None:
    """Defect: conversion cost for frames the sampler drops. 4 s of a 30 fps clip at 5 fps: every frame decoded,
    one in six converted (the real pipeline, its conversions counted), none through RGB."""
    clip = synthetic_clip(tmp_path / "clip.avi", seconds=4.0)
    conversions, rgb = [], []
    real_to_planes, real_rgb = orientation.to_planes, orientation.Upright.__call__
    monkeypatch.setattr(orientation, "to_planes", lambda *a, **k: conversions.append(1) or real_to_planes(*a, **k))
    monkeypatch.setattr(orientation.Upright, "__call__", lambda *a, **k: rgb.append(1) or real_rgb(*a, **k))
    pipe = CameraPipeline(CameraConfig(id="cam", source=str(clip), fps=5, width=640), as_fast_as_possible=True)
    frames = asyncio.run(_collect(pipe))
    assert pipe.stats.decoded == 120 and len(frames) == 20 == pipe.stats.sampled
    assert len(conversions) == 20 and rgb == []
    assert {(f.width, f.height) for f in frames} == {(640, 427)}  # 720x480 scaled, odd height
    assert simplejpeg.decode_jpeg(frames[3].jpeg).std() > 10


def test_odd_sizes_encode_the_same_bytes_whatever_lies_past_the_planes() -> None:
    """Defect: TurboJPEG reads a row and a column past a luma plane of odd size: published bytes varied from run
    to run with the memory after the picture. The edge is repeated instead, after the masks."""
    rng = np.random.default_rng(3)
    for h, w in [(427, 641), (3, 3), (15, 200), (480, 720)]:
        y0 = rng.integers(0, 255, (h, w), dtype=np.uint8)
        c0 = rng.integers(0, 255, ((h + 1) // 2, (w + 1) // 2), dtype=np.uint8)
        jpegs = set()
        for fill in (0, 255):
            planes = []
            for plane in (y0, c0, c0):
                buffer = np.full((plane.shape[0] + 2, plane.shape[1] + 32), fill, np.uint8)
                buffer[:plane.shape[0], :plane.shape[1]] = plane
                planes.append(buffer[:plane.shape[0], :plane.shape[1]])
            jpegs.add(encode_planes(Yuv420(*planes), 80))
        assert len(jpegs) == 1, (h, w)


def test_masks_black_out_luma_and_the_chroma_blocks_they_touch() -> None:
    """Defect: a mask must be black after the JPEG round trip, colour included. A red picture of odd size, a
    mask from (3, 5) to its bottom-right corner: black under it, red elsewhere away from the mask's JPEG blocks."""
    h, w = 37, 51
    red = np.zeros((h, w, 3), np.uint8)
    red[..., 0] = 220
    frame = av.VideoFrame.from_ndarray(red, format="rgb24").reformat(format="yuvj420p")
    picture = Yuv420(*(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width].copy()
                       for p in frame.planes))
    mask = np.zeros((h, w), bool)
    mask[5:, 3:] = True
    assert chroma_mask(mask).shape == picture.u.shape == (19, 26)
    assert chroma_mask(mask)[2, 1] and not chroma_mask(mask)[1, 0]  # rows 4-5 touch row 5, columns 2-3 column 3
    apply_masks_planes(picture, mask)
    decoded = simplejpeg.decode_jpeg(encode_planes(picture, 90)).astype(int)
    assert decoded[8:, 8:].max() <= 12  # black (JPEG tolerance away from the edge)
    assert abs(decoded[0, 40, 0] - 220) <= 12 and decoded[0, 40, 1:].max() <= 20  # still red above the mask


def test_a_bt709_stream_keeps_its_colours() -> None:
    """Defect: an HD camera's BT.709 planes stored as they are in a JPEG (which decoders read as BT.601) shifted
    its colours (a red of 220, 30, 30 came out 202, 10, 31). They are converted to BT.601 with the scaling."""
    from av.video.reformatter import VideoReformatter

    from vigie.grabber.planes import to_planes

    colours = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (200, 200, 40)]
    rgb = np.zeros((64, 64, 3), np.uint8)
    for k, colour in enumerate(colours):
        rgb[32 * (k // 2):32 * (k // 2) + 32, 32 * (k % 2):32 * (k % 2) + 32] = colour
    for matrix, tag in (("ITU709", 1), ("ITU601", 5)):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p", dst_colorspace=matrix, dst_color_range="MPEG")
        frame.colorspace = tag
        decoded = simplejpeg.decode_jpeg(encode_planes(to_planes(frame, 64, 64, VideoReformatter()), 95)).astype(int)
        for k, colour in enumerate(colours):
            y, x = 32 * (k // 2) + 16, 32 * (k % 2) + 16
            assert np.abs(decoded[y, x] - colour).max() <= 6, (matrix, colour, decoded[y, x])
