"""Throughput of the detector's CPU path: preprocessing plus both analytics.

``python -m vigie.detector.bench`` prints frames/s at batch 1 and 8 on one CPU
thread. Input is synthetic but "real-looking" for the analytics: a textured
static scene with sensor noise and moving squares (people), so the
abandoned-object stage does its connected components when a square stops.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from vigie.detector.analytics.abandoned import AbandonedObject
from vigie.detector.analytics.crowd import CrowdMovement
from vigie.detector.preprocess import to_batch


def synthetic_frames(n: int, size: tuple[int, int] = (640, 360), n_movers: int = 6, speed_px: float = 6.0,
                     noise: float = 3.0, seed: int = 0, stop_after: int | None = None) -> list[np.ndarray]:
    """``n`` frames ``(H, W, 3) uint8`` RGB of a static textured scene with moving squares.

    Args:
        size: ``(width, height)`` in pixels.
        n_movers: number of squares (side ~ height/12) bouncing across the frame.
        speed_px: mean speed of the squares, pixels per frame.
        noise: standard deviation of per-frame Gaussian noise, grey levels.
        seed: random seed (the result is deterministic).
        stop_after: if given, the first square stops moving after this frame (a left object).
    """
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    scene = (90 + 40 * np.sin(xx / 23.0) * np.cos(yy / 17.0))[..., None] + rng.normal(0, 12, (h, w, 3))
    scene = np.clip(scene + np.array([10, 0, -10]), 0, 255).astype(np.float32)
    side = max(4, h // 12)
    pos = rng.uniform([0, 0], [w - side, h - side], (n_movers, 2))
    ang = rng.uniform(0, 2 * np.pi, n_movers)
    vel = np.stack([np.cos(ang), np.sin(ang)], 1) * rng.uniform(0.5, 1.5, (n_movers, 1)) * speed_px
    colours = rng.uniform(0, 255, (n_movers, 3)).astype(np.float32)
    frames = []
    for k in range(n):
        img = scene + rng.normal(0, noise, (h, w, 1)).astype(np.float32)
        for j in range(n_movers):
            if not (stop_after is not None and j == 0 and k >= stop_after):
                pos[j] += vel[j]
                for d, lim in ((0, w - side), (1, h - side)):
                    if not 0 <= pos[j, d] <= lim:
                        vel[j, d] = -vel[j, d]
                        pos[j, d] = np.clip(pos[j, d], 0, lim)
            x, y = int(pos[j, 0]), int(pos[j, 1])
            img[y:y + side, x:x + side] = colours[j]
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def measure(n_frames: int = 400, batch_size: int = 1, size: tuple[int, int] = (640, 360),
            fps: float = 5.0, device: str = "cpu", threads: int = 1, distinct: int = 120,
            frames: Sequence[np.ndarray] | None = None) -> float:
    """Frames per second of ``to_batch`` + abandoned-object + crowd-movement on ``threads`` threads.

    Each frame of a batch is another camera, as in the detector. ``n_frames``
    frames are timed in all, after one warm-up batch. The input is ``frames``
    (e.g. decoded footage, ``(H, W, 3) uint8``) or ``distinct`` synthetic frames of
    ``size = (width, height)`` where one square stops for good after a quarter of
    the sequence, so the connected-component stage runs too; it is cycled.

    Returns:
        Frames per second, all cameras together.
    """
    torch.set_num_threads(threads)
    if frames is None:
        frames = synthetic_frames(distinct, size, stop_after=distinct // 4)
    cams = [f"cam{i}" for i in range(batch_size)]
    ao, crowd = AbandonedObject(device=device), CrowdMovement(device=device)
    step_ns = int(1e9 / fps)

    def run(k: int) -> None:
        imgs = [frames[(k + j) % len(frames)] for j in range(batch_size)]
        batch = to_batch(imgs, cams, [k * step_ns] * batch_size, fps, device=device)
        ao.process(batch)
        crowd.process(batch)

    run(0)
    n_batches = max(1, n_frames // batch_size)
    t0 = time.perf_counter()
    for k in range(1, n_batches + 1):
        run(k)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return n_batches * batch_size / (time.perf_counter() - t0)


if __name__ == "__main__":
    for bs in (1, 8):
        print(f"batch {bs}: {measure(480, bs):.0f} frames/s (640x360 synthetic, 1 thread)")
