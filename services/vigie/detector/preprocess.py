"""Turn decoded frames of several cameras into one :class:`FrameBatch` at the working size.

Frames of the same size are stacked and resized together with one
``F.interpolate`` call (bilinear with antialias); frames of other sizes are
resized group by group. The same code
runs on CPU and CUDA: the device is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vigie.detector.analytics.base import FrameBatch

# ITU-R BT.601 luma weights, applied to the resized RGB (the resize is linear, so
# resizing then converting equals converting then resizing).
_LUMA = (0.299, 0.587, 0.114)


def _resize(x: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Resize ``(n, 3, H, W) uint8`` (channels-last) to ``size_hw``; returns float32 in [0, 1].

    Bilinear interpolation with antialias (a triangle filter whose support grows
    with the shrink factor, so no aliasing when shrinking 640 -> 160). On CPU the
    resize runs on uint8 (PyTorch's vectorised channels-last kernel, ~10x faster
    than on float); other devices resize in float32.
    """
    if tuple(x.shape[-2:]) != tuple(size_hw):
        if x.device.type != "cpu":
            x = x.float()
        x = F.interpolate(x, size=size_hw, mode="bilinear", antialias=True, align_corners=False)
    return x.float().mul_(1.0 / 255.0)


def to_batch(
    images: Sequence[np.ndarray],
    camera_ids: Sequence[str],
    time_ns: Sequence[int],
    fps: float | Sequence[float],
    work_size: tuple[int, int] = (160, 120),
    device: torch.device | str = "cpu",
) -> FrameBatch:
    """Build a :class:`FrameBatch` from decoded frames.

    Args:
        images: ``N`` frames, each ``(H, W, 3) uint8`` RGB (sizes may differ).
        camera_ids: ``N`` camera ids; a camera may appear at most once per batch.
        time_ns: ``N`` frame times in ns on each camera's stream clock (PTS).
        fps: sampling rate of each camera in frames per second (one value or ``N``).
        work_size: working ``(width, height)`` in pixels; every frame is resized to it
            (the aspect ratio is not kept; boxes are mapped back per axis).
        device: torch device for the batch tensors.

    Returns:
        A batch whose ``rgb`` is ``(N, 3, h, w) float32`` and ``gray`` ``(N, 1, h, w)
        float32``, both in [0, 1] on ``device``; ``frame_sizes`` holds each original
        ``(W, H)``.

    Raises:
        ValueError: empty input, mismatched lengths, a camera twice, a frame that is
            not ``(H, W, 3) uint8``, a non-positive fps or work size.
    """
    n = len(images)
    if n == 0:
        raise ValueError("to_batch needs at least one image")
    fps_list = [float(fps)] * n if isinstance(fps, (int, float)) else [float(f) for f in fps]
    if not (len(camera_ids) == len(time_ns) == len(fps_list) == n):
        raise ValueError("images, camera_ids, time_ns and fps must have the same length")
    if len(set(camera_ids)) != n:
        raise ValueError("a camera may appear at most once in a batch")
    if any(f <= 0 for f in fps_list):
        raise ValueError("fps must be positive")
    w, h = work_size
    if w <= 0 or h <= 0:
        raise ValueError("work_size must be positive")
    device = torch.device(device)

    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image {i} must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        groups.setdefault(img.shape[:2], []).append(i)

    rgb = torch.empty((n, 3, h, w), dtype=torch.float32, device=device)
    for (H, W), idx in groups.items():
        arr = images[idx[0]][None] if len(idx) == 1 else np.stack([images[i] for i in idx])
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(device, non_blocking=True)
        x = _resize(x.permute(0, 3, 1, 2), (h, w))  # (n, 3, h, w), channels-last memory
        if len(idx) == n:
            rgb.copy_(x)
        else:
            rgb.index_copy_(0, torch.tensor(idx, device=device), x.contiguous())
    rgb = rgb.contiguous()
    gray = (rgb[:, 0:1] * _LUMA[0]).add_(rgb[:, 1:2], alpha=_LUMA[1]).add_(rgb[:, 2:3], alpha=_LUMA[2])
    return FrameBatch(
        gray=gray,
        rgb=rgb,
        camera_ids=list(camera_ids),
        time_ns=[int(t) for t in time_ns],
        frame_sizes=[(int(images[i].shape[1]), int(images[i].shape[0])) for i in range(n)],
        fps=fps_list,
    )
