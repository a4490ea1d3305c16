"""Decode real clips for the analytics tests, the way the grabber feeds the detector.

Frames are sampled to a target rate by presentation time (``frame.time``) and
resized to a target width keeping the aspect ratio, then returned as
``(time_ns, (H, W, 3) uint8 RGB)`` pairs (stream time from the PTS). The clips live in ``../shared/data``
relative to the repository root and are never copied into the repository.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
import pytest

DATA = Path(os.environ.get("VIGIE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
T0_NS = 1_700_000_000_000_000_000  # arbitrary epoch offset for capture times


def data_path(*parts: str) -> Path:
    """Path under the shared data folder; skips the calling test when it is absent."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real footage not available: {path} is absent (shared data folder not mounted)")
    return path


def in_frame_order(files: Iterable[Path]) -> list[Path]:
    """Frame files in numeric order of the numbers in their names (``2.png`` before ``10.png``)."""
    return sorted(files, key=lambda p: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", p.name)])


def _rgb(frame: av.VideoFrame, width: int | None) -> np.ndarray:
    if width is None or width == frame.width:
        return frame.to_ndarray(format="rgb24")
    height = int(round(frame.height * width / frame.width / 2)) * 2
    return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()


@functools.lru_cache(maxsize=8)
def decode_video(path: str, fps: float, width: int | None = 640) -> tuple[tuple[int, np.ndarray], ...]:
    """Decode a video file sampled to ``fps`` by PTS; returns ``(time_ns, RGB uint8)`` pairs."""
    out: list[tuple[int, np.ndarray]] = []
    next_t = None
    with av.open(path) as container:
        for frame in container.decode(video=0):
            t = frame.time
            if t is None:
                continue
            if next_t is None:
                next_t = t
            if t + 1e-6 < next_t:
                continue
            while next_t <= t + 1e-6:
                next_t += 1.0 / fps
            out.append((T0_NS + int(round(t * 1e9)), _rgb(frame, width)))
    return tuple(out)


@functools.lru_cache(maxsize=8)
def decode_frames(folder: str, source_fps: float, fps: float | None = None,
                  width: int | None = None, pattern: str = "*") -> tuple[tuple[int, np.ndarray], ...]:
    """Decode a folder of still frames (``.tif``/``.png``/``.jpg``, in :func:`in_frame_order`) played at ``source_fps``.

    Frame ``i`` gets time ``i / source_fps``; frames are sampled to ``fps`` (default:
    keep all) and resized to ``width`` (default: keep). Grey frames become RGB.
    """
    files = in_frame_order(p for p in Path(folder).glob(pattern) if p.suffix.lower() in {".tif", ".tiff", ".png", ".jpg"})
    out: list[tuple[int, np.ndarray]] = []
    next_t = 0.0
    for i, file in enumerate(files):
        t = i / source_fps
        if fps is not None:
            if t + 1e-6 < next_t:
                continue
            while next_t <= t + 1e-6:
                next_t += 1.0 / fps
        with av.open(str(file)) as container:
            frame = next(container.decode(video=0))
            out.append((T0_NS + int(round(t * 1e9)), _rgb(frame, width)))
    return tuple(out)
