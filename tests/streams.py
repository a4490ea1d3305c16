"""Camera streams with real defects, made with ffmpeg (and PyAV where ffmpeg 5 cannot) in a test's tmp dir.

Each function writes a small file and returns its path; sizes are (width, height) pixels.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np


def ffmpeg(*args: str) -> None:
    """Run ``ffmpeg -y`` quietly with ``args``; raises CalledProcessError (with its stderr) on failure."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True, stdin=subprocess.DEVNULL)


def resolution_change_ts(path: Path, sizes: Sequence[tuple[int, int]], seconds: float = 1.0, fps: int = 10,
                         colour: str = "white", box: tuple[float, float, float, float] | None = None) -> Path:
    """An H.264 MPEG-TS whose size changes mid-stream: one ``seconds`` segment of a ``colour`` picture per size,
    with continuous timestamps (a camera whose profile changes, e.g. 1280x720 -> 704x576 -> 1920x1080).

    ``box``: (x0, y0, x1, y1) as fractions of the picture: a white box drawn over every pixel that the area
    touches at each size (its edges rounded outward), e.g. a lit window."""
    parts = []
    for i, (w, h) in enumerate(sizes):
        part = path.with_name(f"{path.stem}.{i}.ts")
        draw = ""
        if box is not None:
            x0, y0 = int(box[0] * w), int(box[1] * h)
            x1, y1 = -int(-box[2] * w // 1), -int(-box[3] * h // 1)
            draw = f",drawbox=x={x0}:y={y0}:w={x1 - x0}:h={y1 - y0}:color=white:t=fill"
        ffmpeg("-f", "lavfi", "-i", f"color={colour}:s={w}x{h}:r={fps}:d={seconds}{draw}", "-c:v", "libx264",
               "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", str(fps), "-output_ts_offset", str(i * seconds),
               "-f", "mpegts", str(part))
        parts.append(part)
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    return path


def cut_mid_gop_ts(path: Path, size: tuple[int, int] = (320, 240), fps: int = 25, gop: int = 50) -> Path:
    """An H.264 MPEG-TS (B-frames, ``gop`` frames per keyframe) cut at a sixth of its bytes, on a TS packet
    boundary: it starts mid-GOP, like an RTSP stream joined between keyframes."""
    full = path.with_name(f"{path.stem}.full.ts")
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size[0]}x{size[1]}:r={fps}:d={2 * gop / fps}", "-c:v", "libx264",
           "-g", str(gop), "-bf", "2", "-pix_fmt", "yuv420p", "-f", "mpegts", str(full))
    data = full.read_bytes()
    path.write_bytes(data[(len(data) // 188 // 6) * 188:])
    return path


def noise_video(path: Path, size: tuple[int, int], frames: int = 2, fps: int = 5) -> Path:
    """``frames`` pictures of uniform random noise (luma and chroma) in MJPEG (quality 2): JPEG's worst case."""
    ffmpeg("-f", "lavfi", "-i", f"nullsrc=s={size[0]}x{size[1]}:r={fps}:d={frames / fps},"
           "geq=lum='random(1)*255':cb='random(2)*255':cr='random(3)*255',format=yuvj420p",
           "-c:v", "mjpeg", "-q:v", "2", str(path))
    return path


def still_folder(folder: Path, sizes: Sequence[tuple[int, int]], colour: str = "white") -> Path:
    """A folder of numbered PNG stills (``001.png``...), one per size (any size, 1x1 included)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes, start=1):
        ffmpeg("-f", "lavfi", "-i", f"color={colour}:s=16x16,scale={w}:{h},format=rgb24", "-frames:v", "1",
               str(folder / f"{i:03d}.png"))  # the colour source refuses odd sizes such as 1x1: scaled to them
    return folder


def sideways_picture(size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """An asymmetric (H, W, 3) uint8 RGB picture: black, a white block at the top left (a quarter of each side),
    a red band along the top, a blue block at the bottom right."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 4, : w // 4] = 255
    img[: h // 16, w // 4:] = (255, 0, 0)
    img[-h // 4:, -w // 8:] = (0, 0, 255)
    return img


def rotated_video(path: Path, degrees: int, hflip: bool = False, vflip: bool = False, frames: int = 5,
                  size: tuple[int, int] = (320, 180), codec: str = "libx264") -> Path:
    """A video of :func:`sideways_picture` whose display matrix asks for a turn of ``degrees`` counter-clockwise
    (then the flips), as a phone or a camera mounted sideways writes it. Made with PyAV: the ffmpeg 5 command line
    has no ``-display_rotation`` (6.0+) and no longer turns a ``rotate`` tag into a matrix."""
    img = sideways_picture(size)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p" if codec == "libx264" else "bgr0"
        stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def ffmpeg_decode_first(path: Path) -> np.ndarray:
    """The first frame of ``path`` as the ``ffmpeg`` command line shows it (autorotate on): (H, W, 3) uint8 RGB."""
    probe = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe",
                            "-c:v", "ppm", "-"], check=True, capture_output=True).stdout
    header, rest = probe.split(b"\n", 1)
    dims, rest = rest.split(b"\n", 1)
    _, pixels = rest.split(b"\n", 1)
    w, h = (int(v) for v in dims.split())
    return np.frombuffer(pixels, np.uint8).reshape(h, w, 3)
