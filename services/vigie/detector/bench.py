"""Throughput of the detector: preprocessing plus analytics, on CPU threads or a GPU.

``python -m vigie.detector.bench`` prints frames/s at batch 1 and 8 on one CPU
thread; ``--device cuda --batch 64 256 --all`` is the GPU check (every analytic). Input is synthetic but "real-looking" for the analytics: a textured
static scene with sensor noise and moving squares (people), so the
abandoned-object stage does its connected components when a square stops.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch

from vigie.core.options import bounded, resolve_device
from vigie.core.errors import ConfigError
from vigie.detector.analytics.registry import PLUGINS, plugin
from vigie.detector.plan import AnalyticsPlan
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


#: Settings that make every analytic do its full work on the synthetic scene (zones, a colour query).
FULL_SETTINGS: dict[str, dict] = {
    "colour_query": {"queries": [{"name": "red", "colour": "red"}]},
}


def measure(n_frames: int = 400, batch_size: int = 1, size: tuple[int, int] = (640, 360),
            fps: float = 5.0, device: str | torch.device = "cpu", threads: int = 1, distinct: int = 120,
            frames: Sequence[np.ndarray] | None = None,
            kinds: Sequence[str] = ("abandoned_object", "crowd_movement")) -> float:
    """Frames per second of ``to_batch`` + the analytics ``kinds`` on ``threads`` CPU threads or a GPU.

    The analytics run through an :class:`AnalyticsPlan`, as in the detector (shared
    stages included). Each frame of a batch is another camera. ``n_frames``
    frames are timed in all, after one warm-up batch. The input is ``frames``
    (e.g. decoded footage, ``(H, W, 3) uint8``) or ``distinct`` synthetic frames of
    ``size = (width, height)`` where one square stops for good after a quarter of
    the sequence, so the connected-component stages run too; it is cycled.
    Kinds whose module is not in this build are skipped.

    Returns:
        Frames per second, all cameras together.
    """
    torch.set_num_threads(threads)
    if frames is None:
        frames = synthetic_frames(distinct, size, stop_after=distinct // 4)
    cams = [f"cam{i}" for i in range(batch_size)]
    available = []
    for kind in kinds:
        try:
            plugin(kind)
        except ConfigError:
            continue
        available.append(kind)
    section = {kind: FULL_SETTINGS.get(kind, {}) for kind in available}
    plan = AnalyticsPlan({cam: section for cam in cams}, defaults=[], device=device)
    step_ns = int(1e9 / fps)

    def run(k: int) -> None:
        imgs = [frames[(k + j) % len(frames)] for j in range(batch_size)]
        with torch.inference_mode():
            batch = to_batch(imgs, cams, [k * step_ns] * batch_size, fps, device=device)
            plan.process(batch)

    run(0)
    n_batches = max(1, n_frames // batch_size)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for k in range(1, n_batches + 1):
        run(k)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return n_batches * batch_size / (time.perf_counter() - t0)


def object_stage_ms(calls: int = 10, size: tuple[int, int] = (640, 360), threads: int = 1) -> float:
    """Milliseconds per call of the object-class stage on one ``size`` frame, ``threads`` CPU threads.

    Raises:
        ConfigError: the stage's model or OpenCV is not installed.
    """
    from vigie.detector.objects import ObjectDetector

    import cv2

    cv2.setNumThreads(threads)
    detector = ObjectDetector()
    image = synthetic_frames(1, size)[0]
    detector.detect(image)  # loads the model
    t0 = time.perf_counter()
    for _ in range(calls):
        detector.detect(image)
    return (time.perf_counter() - t0) / calls * 1000.0


#: Abandoned-object settings that raise the stopped square of :func:`synthetic_frames` within 60 frames.
FAST_ABANDONED = {"dwell_s": 4.0, "owner_radius_px": 20.0, "owner_absent_s": 1.0, "min_area_px": 50.0}


def alert_batch(cameras: int = 8, later: bool = False, frames: int = 80, threads: int = 1) -> dict[str, float]:
    """The batch in which ``cameras`` cameras raise a left object together, with the object-class stage.

    Every camera sees the same synthetic scene (640x360, a square stops at frame 20), so all raise in
    the same batch. ``later=False``: the analytics wait for the stage's verdict on each candidate
    (one call per camera, one after the other); ``later=True``: they raise at once and the verdicts
    are made afterwards (:mod:`vigie.detector.verdicts`), timed apart.

    Returns ``{"alert_ms": ms to analyse that batch, "verdicts_ms": ms for the verdicts made after it (0 when
    waited for), "raised": cameras raised}``.

    Raises:
        ConfigError: the object-class stage's model or OpenCV is not installed.
        RuntimeError: nothing was raised within ``frames`` frames.
    """
    import cv2

    from vigie.detector.objects import ObjectDetector

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    stage = ObjectDetector()
    stage.warm_up()
    cams = [f"cam{i}" for i in range(cameras)]
    plan = AnalyticsPlan({cam: {"abandoned_object": FAST_ABANDONED} for cam in cams}, defaults=[], device="cpu")
    scene = synthetic_frames(frames, (640, 360), n_movers=3, speed_px=8.0, noise=2.0, seed=3, stop_after=20)
    for k, image in enumerate(scene):
        with torch.inference_mode():
            batch = to_batch([image] * cameras, cams, [k * 200_000_000] * cameras, 5.0)
            # a copy per camera: the stage runs once per frame object (FrameBatch.objects), as for distinct cameras
            batch.images = [image.copy() for _ in cams]
            batch.object_detector, batch.objects_later = stage, later
            t0 = time.perf_counter()
            found = plan.process(batch)
            alert = time.perf_counter() - t0
        if found:
            t0 = time.perf_counter()
            for d in found:
                if d.check is not None:
                    d.check.rejects(stage.detect(batch.images[d.index]))
            return {"alert_ms": alert * 1000, "verdicts_ms": (time.perf_counter() - t0) * 1000, "raised": len(found)}
    raise RuntimeError(f"nothing raised in {frames} frames")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vigie.detector.bench [--device cuda] [--batch 64 256] [--all]``: prints frames/s per batch size.

    Returns 0. Bad options (a count below 1, an unknown device, CUDA on a machine without it)
    stop it before any measure: one line on stderr, ``SystemExit(2)``.
    """
    parser = argparse.ArgumentParser(prog="python -m vigie.detector.bench",
                                     description="Detector throughput (preprocess + analytics), frames/s.")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto")
    parser.add_argument("--batch", type=bounded(int, 1), nargs="+", default=[1, 8],
                        help="batch sizes (cameras per batch)")
    parser.add_argument("--frames", type=bounded(int, 1), default=480, help="frames timed per batch size")
    parser.add_argument("--threads", type=bounded(int, 1), default=1, help="CPU threads")
    parser.add_argument("--all", action="store_true", help="every analytic of the registry, not only the defaults")
    args = parser.parse_args(argv)
    kinds = sorted(PLUGINS) if args.all else ["abandoned_object", "crowd_movement"]
    try:
        device = resolve_device(args.device)
    except ConfigError as exc:
        parser.error(str(exc))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"device: {name}; analytics: {', '.join(kinds)}")
    for batch in args.batch:
        fps = measure(max(args.frames, batch * 4), batch, device=device, threads=args.threads, kinds=kinds)
        print(f"batch {batch:4d}: {fps:8.0f} frames/s (640x360, synthetic scene)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
