"""GPU check for the detector, run on a machine with CUDA (``python bench/gpu_check.py``).

1. correctness: the analytics give the same detections on CUDA as on the CPU for the
   same frames (the one code path, on two devices);
2. throughput: frames/s of preprocess + every analytic at batch 64 and 256 on one GPU
   (goal: >= 3,500 frames/s on one H200, i.e. 350 cameras at 10 fps).

Prints one JSON object. Exits 1 when CUDA is absent or the detections differ.
"""

from __future__ import annotations

import json
import sys

import torch

from vigie.detector.analytics.registry import PLUGINS
from vigie.detector.bench import FULL_SETTINGS, measure, synthetic_frames
from vigie.detector.plan import AnalyticsPlan
from vigie.detector.preprocess import to_batch


def detections(device: str, frames: list, cameras: int = 4) -> list[tuple]:
    """Every detection of every analytic over ``frames`` spread over ``cameras`` cameras, as comparable tuples."""
    plan = AnalyticsPlan({f"cam{c}": FULL_SETTINGS for c in range(cameras)}, sorted(PLUGINS), device)
    found = []
    with torch.inference_mode():
        for k in range(0, len(frames) - cameras, cameras):
            batch = to_batch(frames[k:k + cameras], [f"cam{c}" for c in range(cameras)],
                             [int(k / cameras * 2e8)] * cameras, [5.0] * cameras, device=device)
            for d in plan.process(batch):
                found.append((k, d.index, d.kind, d.track_id, tuple((b.x, b.y, b.w, b.h) for b in d.boxes)))
    return found


def main() -> int:
    if not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA is not available"}))
        return 1
    frames = synthetic_frames(240, stop_after=60)
    cpu, gpu = detections("cpu", frames), detections("cuda", frames)
    same = [a == b for a, b in zip(cpu, gpu)]
    result = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "detections_cpu": len(cpu),
        "detections_cuda": len(gpu),
        "identical": len(cpu) == len(gpu) and all(same),
        "frames_per_s": {str(b): round(measure(max(2048, 8 * b), b, device="cuda", kinds=sorted(PLUGINS)))
                         for b in (64, 256)},
    }
    print(json.dumps(result))
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
